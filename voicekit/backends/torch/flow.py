"""The VITS normalizing flow (residual coupling, mean-only), inference direction only."""

from __future__ import annotations

import torch
from torch import nn

from voicekit.backends.torch.layers import Conv, gated
from voicekit.backends.torch.weights import Architecture


class WN(nn.Module):
    """WaveNet-style stack of gated dilated convolutions with residual and skip outputs."""

    def __init__(self, arch: Architecture, prefix: str) -> None:
        super().__init__()
        hidden, n = arch.flow_hidden, arch.flow_layers
        self.hidden = hidden
        self.in_layers = nn.ModuleList(
            Conv(hidden, 2 * hidden, arch.conv(f"{prefix}.in_layers.{i}")) for i in range(n)
        )
        self.res_skip_layers = nn.ModuleList(
            nn.Conv1d(hidden, 2 * hidden if i < n - 1 else hidden, 1) for i in range(n)
        )
        if arch.gin:
            self.cond_layer = nn.Conv1d(arch.gin, 2 * hidden * n, 1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None
    ) -> torch.Tensor:
        h = self.hidden
        cond = self.cond_layer(g) if g is not None else None
        output = torch.zeros_like(x)
        last = len(self.in_layers) - 1
        for i, (inner, res_skip) in enumerate(
            zip(self.in_layers, self.res_skip_layers, strict=True)
        ):
            x_in = inner(x)
            if cond is not None:
                x_in = x_in + cond[:, i * 2 * h : (i + 1) * 2 * h]
            acts = res_skip(gated(x_in, h))
            if i < last:
                x = (x + acts[:, :h]) * mask
                skip = acts[:, h:]
            else:
                skip = acts
            output = output + skip
        return output * mask


class ResidualCouplingLayer(nn.Module):
    def __init__(self, arch: Architecture, prefix: str) -> None:
        super().__init__()
        self.half = arch.inter // 2
        self.pre = nn.Conv1d(self.half, arch.flow_hidden, 1)
        self.enc = WN(arch, f"{prefix}.enc")
        self.post = nn.Conv1d(arch.flow_hidden, self.half, 1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None
    ) -> torch.Tensor:
        x0, x1 = torch.split(x, [self.half, self.half], 1)
        h = self.enc(self.pre(x0) * mask, mask, g=g)
        m = self.post(h) * mask
        return torch.cat([x0, (x1 - m) * mask], 1)


class ResidualCouplingBlock(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.couplings = arch.flows
        layers: list[nn.Module] = []
        for i in range(max(arch.flows) + 2):
            # Odd places hold VITS's Flip modules, which have no weights.
            layers.append(
                ResidualCouplingLayer(arch, f"flow.flows.{i}") if i in arch.flows else nn.Identity()
            )
        self.flows = nn.ModuleList(layers)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, g: torch.Tensor | None = None
    ) -> torch.Tensor:
        for i in sorted(self.couplings, reverse=True):
            x = torch.flip(x, [1])
            x = self.flows[i](x, mask, g=g)
        return x
