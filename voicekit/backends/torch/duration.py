"""The stochastic duration predictor, inference (reverse) direction only.

Noise -> flows run backwards -> log-durations. VITS builds one ConvFlow that the
reverse pass skips (``dp.flows.1``); Piper's ONNX graph leaves it out, and so do we.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from voicekit.backends.torch.layers import Conv, LayerNorm
from voicekit.backends.torch.weights import Architecture

MIN_BIN_WIDTH = 1e-3
MIN_BIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3


class DDSConv(nn.Module):
    """Dilated depth-separable convolutions with LayerNorm and GELU."""

    def __init__(self, arch: Architecture, prefix: str, channels: int) -> None:
        super().__init__()
        n = arch.dp_layers
        self.convs_sep = nn.ModuleList(
            Conv(channels, channels, arch.conv(f"{prefix}.convs_sep.{i}")) for i in range(n)
        )
        self.convs_1x1 = nn.ModuleList(nn.Conv1d(channels, channels, 1) for _ in range(n))
        self.norms_1 = nn.ModuleList(LayerNorm(channels) for _ in range(n))
        self.norms_2 = nn.ModuleList(LayerNorm(channels) for _ in range(n))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None
    ) -> torch.Tensor:
        if g is not None:
            x = x + g
        for sep, one, norm_1, norm_2 in zip(
            self.convs_sep, self.convs_1x1, self.norms_1, self.norms_2, strict=True
        ):
            y = F.gelu(norm_1(sep(x * mask)))
            y = F.gelu(norm_2(one(y)))
            x = x + y
        return x * mask


def _knots(unnormalized: torch.Tensor, minimum: float, bound: float) -> torch.Tensor:
    """Bin edges in [-bound, bound] from unnormalized bin sizes, ends pinned exactly."""
    bins = unnormalized.shape[-1]
    sizes = minimum + (1 - minimum * bins) * F.softmax(unnormalized, dim=-1)
    inner = (2 * bound) * torch.cumsum(sizes, dim=-1)[..., :-1] + (-bound)
    lo = torch.full_like(inner[..., :1], -bound)
    hi = torch.full_like(inner[..., :1], bound)
    return torch.cat([lo, inner, hi], dim=-1)


def spline_inverse(
    y: torch.Tensor,
    widths_u: torch.Tensor,
    heights_u: torch.Tensor,
    derivatives_u: torch.Tensor,
    bound: float,
) -> torch.Tensor:
    """Inverse of the monotonic rational-quadratic spline with linear tails.

    Computed for every element and selected with ``where`` (no boolean indexing),
    so shapes stay static for CUDA graphs and torch.compile.
    """
    bins = widths_u.shape[-1]
    inside = (y >= -bound) & (y <= bound)
    tail = math.log(math.exp(1 - MIN_DERIVATIVE) - 1)
    derivatives_u = F.pad(derivatives_u, (1, 1), value=tail)
    cumwidths = _knots(widths_u, MIN_BIN_WIDTH, bound)
    cumheights = _knots(heights_u, MIN_BIN_HEIGHT, bound)
    widths = cumwidths[..., 1:] - cumwidths[..., :-1]
    heights = cumheights[..., 1:] - cumheights[..., :-1]
    derivatives = MIN_DERIVATIVE + F.softplus(derivatives_u)

    # Which bin each value falls in (the last edge nudged up, as VITS does).
    edges = torch.cat([cumheights[..., :-1], cumheights[..., -1:] + 1e-6], dim=-1)
    index = (y.unsqueeze(-1) >= edges).sum(dim=-1, keepdim=True) - 1
    index = index.clamp(0, bins - 1)

    def pick(t: torch.Tensor) -> torch.Tensor:
        return t.gather(-1, index).squeeze(-1)

    cw, w, ch, h = pick(cumwidths), pick(widths), pick(cumheights), pick(heights)
    delta = pick(heights / widths)
    d0 = pick(derivatives)
    d1 = derivatives[..., 1:].gather(-1, index).squeeze(-1)

    shifted = y - ch
    curvature = d0 + d1 - 2 * delta
    a = shifted * curvature + h * (delta - d0)
    b = h * d0 - shifted * curvature
    c = -delta * shifted
    root = (2 * c) / (-b - torch.sqrt(b.pow(2) - 4 * a * c))
    x = root * w + cw
    return torch.where(inside, x, y)


class ElementwiseAffine(nn.Module):
    """x -> (x - m) * exp(-logs); Piper's export folds exp(-logs), kept here as ``scale``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.m = nn.Parameter(torch.zeros(channels, 1))
        self.scale = nn.Parameter(torch.ones(channels, 1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return (x - self.m) * self.scale * mask


class ConvFlow(nn.Module):
    def __init__(self, arch: Architecture, prefix: str) -> None:
        super().__init__()
        channels = arch.dp_channels
        self.half = 1
        self.bins = arch.dp_bins
        self.bound = arch.tail_bound
        self.norm = math.sqrt(channels)
        self.pre = nn.Conv1d(self.half, channels, 1)
        self.convs = DDSConv(arch, f"{prefix}.convs", channels)
        self.proj = nn.Conv1d(channels, self.half * (self.bins * 3 - 1), 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half, self.half], 1)
        h = self.convs(self.pre(x0), mask, g=g)
        h = self.proj(h) * mask
        b, c, t = x0.shape
        h = h.reshape(b, c, -1, t).permute(0, 1, 3, 2)
        k = self.bins
        x1 = spline_inverse(
            x1, h[..., :k] / self.norm, h[..., k : 2 * k] / self.norm, h[..., 2 * k :], self.bound
        )
        return torch.cat([x0, x1], 1) * mask


class StochasticDurationPredictor(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        channels = arch.dp_channels
        self.used = arch.dp_flows
        self.pre = nn.Conv1d(arch.hidden, channels, 1)
        self.convs = DDSConv(arch, "dp.convs", channels)
        self.proj = nn.Conv1d(channels, channels, 1)
        if arch.gin:
            self.cond = nn.Conv1d(arch.gin, channels, 1)
        flows: list[nn.Module] = [ElementwiseAffine(2)]
        for i in range(1, 2 * arch.dp_all_flows + 1):
            if i % 2 == 0 or i not in self.used:
                flows.append(nn.Identity())  # Flip (stateless) or the flow reverse skips
            else:
                flows.append(ConvFlow(arch, f"dp.flows.{i}"))
        self.flows = nn.ModuleList(flows)

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        noise: torch.Tensor | None,
        noise_scale: torch.Tensor | float,
        g: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Log-durations [b, 1, t]; ``noise`` [b, 2, t] (None: drawn, for ONNX export)."""
        x = self.pre(x)
        if g is not None:
            x = x + self.cond(g)
        x = self.convs(x, mask)
        x = self.proj(x) * mask
        if noise is None:
            noise = torch.randn_like(x[:, :2])
        z = noise * noise_scale
        for i in sorted(self.used, reverse=True):
            z = torch.flip(z, [1])
            z = self.flows[i](z, mask, g=x)
        z = torch.flip(z, [1])
        z = self.flows[0](z, mask)
        return z[:, :1]


def duration_reach(arch: Architecture) -> int:
    """Positions either side that one convolution of the text encoder or duration
    predictor reads. Each reads masked input, so a gap of this many zeros between
    sentences in a row keeps them apart (attention is kept apart by its mask)."""
    reach = 0
    for path, c in arch.convs.items():
        if path.startswith(("dp.", "enc_p.")):
            reach = max(reach, c.pads[0], c.dilation * (c.kernel - 1) - c.pads[0])
    return reach
