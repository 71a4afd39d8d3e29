"""Architectures as a Piper training config describes them, for small random test voices.

The engine reads architectures from voice graphs only; tests build fresh models
of other shapes from these and export them as Piper does (test_torch_export.py).
"""

from __future__ import annotations

from voicekit.backends.torch.weights import DEFAULT_TAIL_BOUND, Architecture, ConvSpec


def standard_architecture(
    *,
    n_vocab: int,
    hidden: int = 192,
    inter: int = 192,
    filter_channels: int = 768,
    heads: int = 2,
    layers: int = 6,
    ffn_kernel: int = 3,
    window: int = 4,
    dp_kernel: int = 3,
    dp_layers: int = 3,
    dp_flows: int = 4,
    dp_bins: int = 10,
    n_flows: int = 4,
    flow_layers: int = 4,
    flow_kernel: int = 5,
    flow_dilation: int = 1,
    resblock: str = "2",
    resblock_kernels: tuple[int, ...] = (3, 5, 7),
    resblock_dilations: tuple[tuple[int, ...], ...] = ((1, 2), (2, 6), (3, 12)),
    upsample_rates: tuple[int, ...] = (8, 8, 4),
    upsample_kernels: tuple[int, ...] = (16, 16, 8),
    dec_initial: int = 256,
    n_speakers: int = 1,
    gin: int = 0,
    slope: float = 0.1,
    final_slope: float = 0.01,
) -> Architecture:
    """The architecture a Piper training config describes, every conv the modules look up."""
    convs: dict[str, ConvSpec] = {}

    def dds(prefix: str, channels: int) -> None:
        for i in range(dp_layers):
            d = dp_kernel**i
            pad = (dp_kernel * d - d) // 2
            convs[f"{prefix}.convs_sep.{i}"] = ConvSpec(
                dp_kernel, dilation=d, pads=(pad, pad), groups=channels
            )

    for i in range(layers):
        for name in ("conv_1", "conv_2"):
            convs[f"enc_p.encoder.ffn_layers.{i}.{name}"] = ConvSpec(ffn_kernel)
    dds("dp.convs", hidden)
    used = tuple(range(3, 2 * dp_flows, 2))
    for n in used:
        dds(f"dp.flows.{n}.convs", hidden)
    couplings = tuple(range(0, 2 * n_flows, 2))
    for n in couplings:
        for i in range(flow_layers):
            d = flow_dilation**i
            pad = (flow_kernel * d - d) // 2
            convs[f"flow.flows.{n}.enc.in_layers.{i}"] = ConvSpec(
                flow_kernel, dilation=d, pads=(pad, pad)
            )
    convs["dec.conv_pre"] = ConvSpec(7, pads=(3, 3))
    for i, (u, k) in enumerate(zip(upsample_rates, upsample_kernels, strict=True)):
        pad = (k - u) // 2
        convs[f"dec.ups.{i}"] = ConvSpec(k, stride=u, pads=(pad, pad), transposed=True, slope=slope)
        for j, (rk, dils) in enumerate(zip(resblock_kernels, resblock_dilations, strict=True)):
            block = f"dec.resblocks.{i * len(resblock_kernels) + j}"
            for c, d in enumerate(dils):
                pad = (rk * d - d) // 2
                if resblock == "1":
                    convs[f"{block}.convs1.{c}"] = ConvSpec(
                        rk, dilation=d, pads=(pad, pad), slope=slope
                    )
                    convs[f"{block}.convs2.{c}"] = ConvSpec(
                        rk, pads=((rk - 1) // 2, (rk - 1) // 2), slope=slope
                    )
                else:
                    convs[f"{block}.convs.{c}"] = ConvSpec(
                        rk, dilation=d, pads=(pad, pad), slope=slope
                    )
    convs["dec.conv_post"] = ConvSpec(7, pads=(3, 3), slope=final_slope)
    return Architecture(
        n_vocab=n_vocab,
        hidden=hidden,
        inter=inter,
        filter=filter_channels,
        heads=heads,
        layers=layers,
        ffn_kernel=ffn_kernel,
        window=window,
        dp_channels=hidden,
        dp_kernel=dp_kernel,
        dp_layers=dp_layers,
        dp_flows=used,
        dp_all_flows=dp_flows,
        dp_bins=dp_bins,
        tail_bound=DEFAULT_TAIL_BOUND,
        flows=couplings,
        flow_hidden=hidden,
        flow_layers=flow_layers,
        flow_kernel=flow_kernel,
        dec_initial=dec_initial,
        upsample_rates=tuple(upsample_rates),
        upsample_kernels=tuple(upsample_kernels),
        upsample_channels=tuple(dec_initial // 2 ** (i + 1) for i in range(len(upsample_rates))),
        resblock=resblock,
        resblock_kernels=tuple(resblock_kernels),
        resblock_convs=len(resblock_dilations[0]),
        post_bias=False,
        n_speakers=n_speakers,
        gin=gin if n_speakers > 1 else 0,
        convs=convs,
    )
