"""Small building blocks shared by the VITS modules: graph-shaped convs, masks, LayerNorm."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from voicekit.backends.torch.weights import ConvSpec


def _split_pads(s: ConvSpec) -> tuple[int, tuple[int, int] | None]:
    """(the padding torch's layer takes, the graph's pads when torch cannot take them).

    torch pads both sides alike; an asymmetric pair is left to the layer's forward.
    """
    if s.pads[0] == s.pads[1]:
        return s.pads[0], None
    return 0, s.pads


class Conv(nn.Conv1d):
    """Conv1d padded as the graph pads it (asymmetric pads included)."""

    def __init__(self, cin: int, cout: int, s: ConvSpec, bias: bool = True) -> None:
        padding, extra = _split_pads(s)
        super().__init__(
            cin,
            cout,
            s.kernel,
            s.stride,
            padding=padding,
            dilation=s.dilation,
            groups=s.groups,
            bias=bias,
        )
        self._extra_pads = extra
        self.slope = s.slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._extra_pads is not None:
            x = F.pad(x, self._extra_pads)
        return super().forward(x)


class ConvT(nn.ConvTranspose1d):
    """ConvTranspose1d as the graph runs it; asymmetric pads crop the output."""

    def __init__(self, cin: int, cout: int, s: ConvSpec, bias: bool = True) -> None:
        padding, crop = _split_pads(s)
        super().__init__(
            cin,
            cout,
            s.kernel,
            s.stride,
            padding=padding,
            output_padding=s.output_padding,
            groups=s.groups,
            bias=bias,
            dilation=s.dilation,
        )
        self._crop = crop
        self.slope = s.slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        y = super().forward(x)
        if self._crop is not None:
            y = y[..., self._crop[0] : y.shape[-1] - self._crop[1]]
        return y


class LayerNorm(nn.Module):
    """VITS LayerNorm: normalizes the channel axis of [batch, channels, time]."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = channels
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x.transpose(1, -1), (self.channels,), self.gamma, self.beta, self.eps)
        return x.transpose(1, -1)


def sequence_mask(lengths: torch.Tensor, size: int | torch.Tensor) -> torch.Tensor:
    """[batch, 1, size] float mask, 1 where position < length."""
    positions = torch.arange(size, device=lengths.device, dtype=lengths.dtype)  # type: ignore[arg-type]
    return (positions.unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(1).to(torch.float32)


def gated(x: torch.Tensor, channels: int) -> torch.Tensor:
    """WaveNet's gate: tanh of the first half times sigmoid of the second."""
    return torch.tanh(x[:, :channels]) * torch.sigmoid(x[:, channels:])
