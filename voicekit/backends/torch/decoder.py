"""The HiFi-GAN decoder (VITS's vocoder), with optional masks for padded batches.

Given per-item lengths, every convolution's input is zeroed past its item's end,
exactly where a one-item run would see its zero padding; so a padded batch gives
each item the same samples as running it alone.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from voicekit.backends.torch.layers import Conv, ConvT, sequence_mask
from voicekit.backends.torch.weights import Architecture, ConvSpec


def _act(x: torch.Tensor, slope: float | None, mask: torch.Tensor | None) -> torch.Tensor:
    if slope is not None:
        x = F.leaky_relu(x, slope)
    if mask is not None:
        x = x * mask
    return x


class ResBlock1(nn.Module):
    """HiFi-GAN residual block type 1: dilated conv then plain conv, per branch."""

    def __init__(self, arch: Architecture, prefix: str, channels: int) -> None:
        super().__init__()
        n = arch.resblock_convs
        self.convs1 = nn.ModuleList(
            Conv(channels, channels, arch.conv(f"{prefix}.convs1.{i}")) for i in range(n)
        )
        self.convs2 = nn.ModuleList(
            Conv(channels, channels, arch.conv(f"{prefix}.convs2.{i}")) for i in range(n)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for c1, c2 in zip(self.convs1, self.convs2, strict=True):
            xt = c1(_act(x, c1.slope, mask))
            xt = c2(_act(xt, c2.slope, mask))
            x = xt + x
        return x if mask is None else x * mask


class ResBlock2(nn.Module):
    """HiFi-GAN residual block type 2: one dilated conv per step."""

    def __init__(self, arch: Architecture, prefix: str, channels: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            Conv(channels, channels, arch.conv(f"{prefix}.convs.{i}"))
            for i in range(arch.resblock_convs)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        for conv in self.convs:
            x = conv(_act(x, conv.slope, mask)) + x
        return x if mask is None else x * mask


class Generator(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.rates = arch.upsample_rates
        self.num_kernels = arch.num_kernels
        self.conv_pre = Conv(arch.inter, arch.dec_initial, arch.conv("dec.conv_pre"))
        if arch.gin:
            self.cond = nn.Conv1d(arch.gin, arch.dec_initial, 1)
        block = ResBlock1 if arch.resblock == "1" else ResBlock2
        ups: list[nn.Module] = []
        blocks: list[nn.Module] = []
        ch = arch.dec_initial
        for i, out in enumerate(arch.upsample_channels):
            ups.append(ConvT(ch, out, arch.conv(f"dec.ups.{i}")))
            ch = out
            for j in range(self.num_kernels):
                blocks.append(block(arch, f"dec.resblocks.{i * self.num_kernels + j}", ch))
        self.ups = nn.ModuleList(ups)
        self.resblocks = nn.ModuleList(blocks)
        self.conv_post = Conv(ch, 1, arch.conv("dec.conv_post"), bias=arch.post_bias)

    def forward(
        self,
        x: torch.Tensor,
        g: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Latents [b, channels, frames] -> audio [b, 1, frames * hop].

        ``lengths`` (frames per item) masks the padding of a batch; None runs unmasked,
        as the voice's own graph does. ``mask`` [b, 1, frames] (1 on real frames) does
        the same for rows packed with several utterances and gaps between them.
        """
        masks: list[torch.Tensor] | None = None
        if mask is not None:
            scale = 1
            masks = [mask.to(x.dtype)]
            for rate in self.rates:
                scale *= rate
                masks.append(torch.repeat_interleave(masks[0], scale, dim=-1))
        elif lengths is not None:
            frames = x.shape[-1]
            scale = 1
            masks = [sequence_mask(lengths, frames).to(x.dtype)]
            for rate in self.rates:
                scale *= rate
                masks.append(sequence_mask(lengths * scale, frames * scale).to(x.dtype))
        x = self.conv_pre(x)
        if g is not None:
            x = x + self.cond(g)
        if masks is not None:
            x = x * masks[0]
        for i, up in enumerate(self.ups):
            mask = None if masks is None else masks[i + 1]
            x = up(_act(x, up.slope, None))
            if mask is not None:
                x = x * mask
            xs = self.resblocks[i * self.num_kernels](x, mask)
            for j in range(1, self.num_kernels):
                xs = xs + self.resblocks[i * self.num_kernels + j](x, mask)
            x = xs / self.num_kernels
        x = self.conv_post(_act(x, self.conv_post.slope, None))
        return torch.tanh(x)


def flow_receptive_field(arch: Architecture) -> int:
    """Latent frames either side of a frame that the flow's convolutions can reach."""
    reach = 0
    for i in arch.flows:
        for k in range(arch.flow_layers):
            c = arch.conv(f"flow.flows.{i}.enc.in_layers.{k}")
            reach += max(c.pads[0], c.dilation * (c.kernel - 1) - c.pads[0])
    return reach


def receptive_field(arch: Architecture) -> tuple[int, int]:
    """Latent frames before and after a frame that can change that frame's audio.

    Walks from the output back to the latents: a stride-1 conv widens the window
    by its pads on the left and by dilation*(kernel-1)-pad on the right; parallel
    residual blocks take the widest; a transposed conv of stride s maps a window of
    (left, right) output samples to floor((left + d(k-1) - p)/s) input steps before
    and floor((s - 1 + right + p)/s) after.
    """
    left = right = 0

    def widen(c: ConvSpec) -> None:
        nonlocal left, right
        left += c.pads[0]
        right += c.dilation * (c.kernel - 1) - c.pads[0]

    widen(arch.conv("dec.conv_post"))
    n = arch.num_kernels
    names = ("convs1", "convs2") if arch.resblock == "1" else ("convs",)
    for i in reversed(range(len(arch.upsample_rates))):
        best_left = best_right = 0
        for j in range(n):
            block_left = block_right = 0
            for name in names:
                for k in range(arch.resblock_convs):
                    c = arch.conv(f"dec.resblocks.{i * n + j}.{name}.{k}")
                    block_left += c.pads[0]
                    block_right += c.dilation * (c.kernel - 1) - c.pads[0]
            best_left, best_right = max(best_left, block_left), max(best_right, block_right)
        left, right = left + best_left, right + best_right
        up = arch.conv(f"dec.ups.{i}")
        span = up.dilation * (up.kernel - 1)
        left = (left + span - up.pads[0]) // up.stride
        right = (up.stride - 1 + right + up.pads[0]) // up.stride
    widen(arch.conv("dec.conv_pre"))
    return left, right
