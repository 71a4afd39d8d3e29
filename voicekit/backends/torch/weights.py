"""Read a Piper VITS voice's ONNX graph into named weights and an architecture.

Piper exports with torch's TorchScript ONNX exporter, which names every node after
the module that made it (``/flow/flows.6/enc/in_layers.0/Conv``). A weight's
consumer therefore names it even where the initializer itself is anonymous
(weight norm folded at export gives ``onnx::Conv_8168``) or oddly named (the
phoneme embedding of a single-speaker voice is called ``sid``). Sizes come from
the weights' shapes; dilations, paddings, strides, groups and LeakyRelu slopes
come from the nodes' attributes, so any Piper voice loads whatever its quality
level, with no layer sizes written down here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import VoiceError

# Algorithm constants of the VITS spline (not layer sizes): used only if the
# graph does not show its own.
DEFAULT_TAIL_BOUND = 5.0


@dataclass(frozen=True)
class ConvSpec:
    """One convolution as the graph runs it."""

    kernel: int
    stride: int = 1
    dilation: int = 1
    pads: tuple[int, int] = (0, 0)
    groups: int = 1
    transposed: bool = False
    output_padding: int = 0
    slope: float | None = None
    """Slope of the LeakyRelu applied to this conv's input, if there is one."""


@dataclass(frozen=True)
class Architecture:
    """Everything the torch modules need to rebuild a voice's network."""

    n_vocab: int
    hidden: int
    inter: int
    """Latent channels (the decoder's input)."""
    filter: int
    heads: int
    layers: int
    ffn_kernel: int
    window: int
    dp_channels: int
    dp_kernel: int
    dp_layers: int
    dp_flows: tuple[int, ...]
    """Indices in ``dp.flows`` of the ConvFlows the reverse pass uses (ascending)."""
    dp_all_flows: int
    """How many ConvFlows the duration predictor was built with (one is unused in reverse)."""
    dp_bins: int
    tail_bound: float
    flows: tuple[int, ...]
    """Indices in ``flow.flows`` of the coupling layers (ascending)."""
    flow_hidden: int
    flow_layers: int
    flow_kernel: int
    dec_initial: int
    upsample_rates: tuple[int, ...]
    upsample_kernels: tuple[int, ...]
    upsample_channels: tuple[int, ...]
    """Output channels of each upsampling layer."""
    resblock: str
    """HiFi-GAN residual block type: "1" (convs1/convs2) or "2" (convs)."""
    resblock_kernels: tuple[int, ...]
    resblock_convs: int
    """Dilated convs per residual block."""
    post_bias: bool
    n_speakers: int
    gin: int
    """Speaker-embedding channels (0 for single-speaker voices)."""
    convs: Mapping[str, ConvSpec] = field(repr=False)
    """Every convolution by module path, e.g. ``dec.resblocks.0.convs.1``."""

    @property
    def hop(self) -> int:
        return math.prod(self.upsample_rates)

    @property
    def num_kernels(self) -> int:
        return len(self.resblock_kernels)

    def conv(self, path: str) -> ConvSpec:
        try:
            return self.convs[path]
        except KeyError:
            raise VoiceError(f"the voice graph has no convolution {path}") from None


@dataclass
class VoiceWeights:
    """Named float32 weights plus the architecture they fit."""

    arch: Architecture
    tensors: dict[str, np.ndarray]


def module_path(node_name: str) -> str | None:
    """``/flow/flows.6/enc/in_layers.0/Conv`` -> ``flow.flows.6.enc.in_layers.0``."""
    if not node_name.startswith("/"):
        return None
    parts = node_name.strip("/").split("/")
    if len(parts) < 2:
        return None
    return ".".join(parts[:-1])


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _is_named_param(name: str) -> bool:
    return "." in name and not name.startswith(("onnx::", "/")) and " " not in name


def _indices(names: Iterable[str], pattern: str) -> list[int]:
    rx = re.compile(pattern)
    return sorted({int(m.group(1)) for n in names if (m := rx.match(n))})


def read_graph(model: Any) -> tuple[dict[str, np.ndarray], dict[str, ConvSpec], float | None]:
    """Weights by module path, conv specs by module path, and the spline's tail bound."""
    from onnx import numpy_helper

    graph = model.graph
    values: dict[str, np.ndarray] = {
        init.name: numpy_helper.to_array(init) for init in graph.initializer
    }
    for node in graph.node:  # folded constants may also live in Constant nodes
        if node.op_type == "Constant" and node.output:
            attrs = _attrs(node)
            if "value" in attrs:
                values[node.output[0]] = numpy_helper.to_array(attrs["value"])
    producers = {out: node for node in graph.node for out in node.output}

    tensors: dict[str, np.ndarray] = {}
    convs: dict[str, ConvSpec] = {}
    tail_bound: float | None = None
    for name, value in values.items():
        if _is_named_param(name):
            tensors[name] = value
    for node in graph.node:
        path = module_path(node.name)
        if path is None:
            continue
        if node.op_type in ("Conv", "ConvTranspose"):
            weight = values.get(node.input[1])
            if weight is None:
                raise VoiceError(
                    f"weight of {node.name} is computed in the graph, not stored; "
                    "the torch backend cannot read this voice (use --backend ort)"
                )
            tensors[f"{path}.weight"] = weight
            if len(node.input) > 2 and node.input[2]:
                tensors[f"{path}.bias"] = values[node.input[2]]
            attrs = _attrs(node)
            pads = tuple(attrs.get("pads", [0, 0]))
            source = producers.get(node.input[0])
            slope = None
            if source is not None and source.op_type == "LeakyRelu":
                slope = float(_attrs(source).get("alpha", 0.01))
            convs[path] = ConvSpec(
                kernel=int(weight.shape[-1]),
                stride=int(attrs.get("strides", [1])[0]),
                dilation=int(attrs.get("dilations", [1])[0]),
                pads=(int(pads[0]), int(pads[1])),
                groups=int(attrs.get("group", 1)),
                transposed=node.op_type == "ConvTranspose",
                output_padding=int(attrs.get("output_padding", [0])[0]),
                slope=slope,
            )
        elif node.op_type == "Gather" and path in ("enc_p.emb", "emb_g"):
            if node.input[0] in values:
                tensors[f"{path}.weight"] = values[node.input[0]]
        elif node.op_type == "LessOrEqual" and path.startswith("dp.flows."):
            bound = values.get(node.input[1])
            if bound is not None and bound.size == 1:
                tail_bound = float(bound.reshape(()))
    _read_affine(graph, values, tensors)
    return tensors, convs, tail_bound


def _read_affine(graph: Any, values: dict[str, np.ndarray], tensors: dict[str, np.ndarray]) -> None:
    """The duration predictor's ElementwiseAffine: ``m`` and exp(-logs), folded or not."""
    if "dp.flows.0.logs" in tensors:
        logs = tensors.pop("dp.flows.0.logs").astype(np.float32)
        tensors["dp.flows.0.scale"] = np.exp(-logs).astype(np.float32)
        return
    # Folded at export into a constant that multiplies (x - m): find that Mul.
    for node in graph.node:
        if node.op_type == "Mul" and node.name.startswith("/dp/flows.0/"):
            for name in node.input:
                value = values.get(name)
                if value is not None and value.ndim == 2 and value.shape[-1] == 1:
                    tensors["dp.flows.0.scale"] = value.astype(np.float32)
                    return
    raise VoiceError("the duration predictor's first flow (dp.flows.0) was not found")


def architecture(
    tensors: Mapping[str, np.ndarray],
    convs: Mapping[str, ConvSpec],
    config: Mapping[str, Any],
    tail_bound: float | None = None,
) -> Architecture:
    """Sizes from the weights, layer settings from the graph, speakers from the JSON."""

    def shape(name: str) -> tuple[int, ...]:
        if name not in tensors:
            raise VoiceError(
                f"weight {name} missing: not a Piper VITS voice the torch backend knows"
            )
        return tuple(int(d) for d in tensors[name].shape)

    names = list(tensors)
    if "dp.conv_1.weight" in tensors:
        raise VoiceError("voices with a deterministic duration predictor are not supported")
    n_vocab, hidden = shape("enc_p.emb.weight")
    layers = len(_indices(names, r"enc_p\.encoder\.attn_layers\.(\d+)\.conv_q\.weight"))
    _, window_span, k_channels = shape("enc_p.encoder.attn_layers.0.emb_rel_k")
    filter_channels, _, ffn_kernel = shape("enc_p.encoder.ffn_layers.0.conv_1.weight")
    inter = shape("enc_p.proj.weight")[0] // 2

    dp_channels = shape("dp.pre.weight")[0]
    dp_kernel = shape("dp.convs.convs_sep.0.weight")[-1]
    dp_layers = len(_indices(names, r"dp\.convs\.convs_sep\.(\d+)\.weight"))
    dp_flows = tuple(_indices(names, r"dp\.flows\.(\d+)\.pre\.weight"))
    if not dp_flows:
        raise VoiceError("the voice has no duration-predictor flows (dp.flows.N)")
    half = shape(f"dp.flows.{dp_flows[0]}.pre.weight")[1]
    dp_bins = (shape(f"dp.flows.{dp_flows[0]}.proj.weight")[0] // half + 1) // 3

    flows = tuple(_indices(names, r"flow\.flows\.(\d+)\.pre\.weight"))
    flow_hidden = shape(f"flow.flows.{flows[0]}.pre.weight")[0]
    flow_layers = len(_indices(names, rf"flow\.flows\.{flows[0]}\.enc\.in_layers\.(\d+)\.weight"))
    flow_kernel = shape(f"flow.flows.{flows[0]}.enc.in_layers.0.weight")[-1]

    ups = _indices(names, r"dec\.ups\.(\d+)\.weight")
    dec_initial = shape("dec.conv_pre.weight")[0]
    upsample_rates = tuple(convs[f"dec.ups.{i}"].stride for i in ups)
    upsample_kernels = tuple(shape(f"dec.ups.{i}.weight")[-1] for i in ups)
    upsample_channels = tuple(shape(f"dec.ups.{i}.weight")[1] for i in ups)
    for i in ups:
        c = convs[f"dec.ups.{i}"]
        grown = c.dilation * (c.kernel - 1) + 1 + c.output_padding - sum(c.pads)
        if grown != c.stride:
            raise VoiceError(
                f"dec.ups.{i} does not give exactly {c.stride} samples per input step; "
                "the torch backend cannot run this decoder (use --backend ort)"
            )
    n_res = len(_indices(names, r"dec\.resblocks\.(\d+)\."))
    if n_res % len(ups):
        raise VoiceError(f"{n_res} residual blocks do not divide among {len(ups)} upsamples")
    per_up = n_res // len(ups)
    if "dec.resblocks.0.convs1.0.weight" in tensors:
        resblock, first = "1", "convs1"
    else:
        resblock, first = "2", "convs"
    resblock_convs = len(_indices(names, rf"dec\.resblocks\.0\.{first}\.(\d+)\.weight"))
    resblock_kernels = tuple(
        shape(f"dec.resblocks.{j}.{first}.0.weight")[-1] for j in range(per_up)
    )

    n_speakers, gin = shape("emb_g.weight") if "emb_g.weight" in tensors else (1, 0)
    json_speakers = int(config.get("num_speakers", n_speakers))
    if json_speakers > 1 and json_speakers != n_speakers:
        raise VoiceError(
            f"the voice JSON says {json_speakers} speakers, the model has {n_speakers}"
        )
    hop = math.prod(upsample_rates)
    json_hop = config.get("hop_length")
    if json_hop is not None and int(json_hop) != hop:
        raise VoiceError(f"the voice JSON says hop {json_hop}, the decoder upsamples by {hop}")
    return Architecture(
        n_vocab=n_vocab,
        hidden=hidden,
        inter=inter,
        filter=filter_channels,
        heads=hidden // k_channels,
        layers=layers,
        ffn_kernel=ffn_kernel,
        window=(window_span - 1) // 2,
        dp_channels=dp_channels,
        dp_kernel=dp_kernel,
        dp_layers=dp_layers,
        dp_flows=dp_flows,
        dp_all_flows=max(dp_flows) // 2 + 1,
        dp_bins=dp_bins,
        tail_bound=DEFAULT_TAIL_BOUND if tail_bound is None else tail_bound,
        flows=flows,
        flow_hidden=flow_hidden,
        flow_layers=flow_layers,
        flow_kernel=flow_kernel,
        dec_initial=dec_initial,
        upsample_rates=upsample_rates,
        upsample_kernels=upsample_kernels,
        upsample_channels=upsample_channels,
        resblock=resblock,
        resblock_kernels=resblock_kernels,
        resblock_convs=resblock_convs,
        post_bias="dec.conv_post.bias" in tensors,
        n_speakers=n_speakers,
        gin=gin,
        convs=dict(convs),
    )


def load_weights(model_path: Path, config: Mapping[str, Any]) -> VoiceWeights:
    """The voice's weights and architecture, straight from its ONNX file."""
    import onnx

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # onnx raises DecodeError and others for a broken file
        raise VoiceError(f"voice file {model_path} is not a readable ONNX model: {exc}") from exc
    tensors, convs, tail_bound = read_graph(model)
    if not convs:
        raise VoiceError(
            f"{model_path.name}: its graph nodes carry no module names; "
            "the torch backend cannot map its weights (use --backend ort)"
        )
    arch = architecture(tensors, convs, config, tail_bound)
    wanted = {k: v.astype(np.float32, copy=False) for k, v in tensors.items() if _wanted(k)}
    return VoiceWeights(arch, wanted)


def _wanted(name: str) -> bool:
    # Constants such as /Constant_output_0 are graph plumbing, not weights.
    return name.split(".", 1)[0] in ("enc_p", "dp", "flow", "dec", "emb_g")
