"""The VITS text encoder: phoneme embedding, transformer with relative positions, stats."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from voicekit.backends.torch.layers import Conv, LayerNorm, sequence_mask
from voicekit.backends.torch.weights import Architecture


def _relative_indices(
    length: int, window: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Index maps between absolute [t, t] and relative [t, 2w+1] attention positions.

    VITS pads its relative embeddings to 2t-1 positions and skews them with
    reshapes; only offsets within the window are non-zero, so gathering the
    2w+1 in-window offsets gives the same sums with O(t*w) memory instead of O(t^2).
    """
    pos = torch.arange(length, device=device)
    offset = pos.unsqueeze(0) - pos.unsqueeze(1) + window  # [i, j] -> j - i + w
    to_abs_valid = (offset >= 0) & (offset <= 2 * window)
    to_abs = offset.clamp(0, 2 * window)
    rel = torch.arange(2 * window + 1, device=device)
    column = pos.unsqueeze(1) + rel.unsqueeze(0) - window  # [i, k] -> i + k - w
    to_rel_valid = (column >= 0) & (column < length)
    to_rel = column.clamp(0, length - 1)
    return to_abs, to_abs_valid, to_rel, to_rel_valid


class MultiHeadAttention(nn.Module):
    """Self-attention with relative-position keys and values (shared across heads)."""

    def __init__(self, channels: int, heads: int, window: int) -> None:
        super().__init__()
        self.heads = heads
        self.window = window
        self.k_channels = channels // heads
        self.conv_q = nn.Conv1d(channels, channels, 1)
        self.conv_k = nn.Conv1d(channels, channels, 1)
        self.conv_v = nn.Conv1d(channels, channels, 1)
        self.conv_o = nn.Conv1d(channels, channels, 1)
        self.emb_rel_k = nn.Parameter(torch.zeros(1, 2 * window + 1, self.k_channels))
        self.emb_rel_v = nn.Parameter(torch.zeros(1, 2 * window + 1, self.k_channels))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        b, c, t = x.shape
        h, d = self.heads, self.k_channels
        q = self.conv_q(x).view(b, h, d, t).transpose(2, 3) / math.sqrt(d)
        k = self.conv_k(x).view(b, h, d, t).transpose(2, 3)
        v = self.conv_v(x).view(b, h, d, t).transpose(2, 3)
        to_abs, abs_valid, to_rel, rel_valid = _relative_indices(t, self.window, x.device)

        scores = torch.matmul(q, k.transpose(-2, -1))
        # emb @ q^T rather than q @ emb^T: an ONNX export then keeps the weight's own
        # name instead of folding its transpose into an anonymous constant.
        rel_logits = torch.matmul(self.emb_rel_k, q.transpose(-2, -1)).transpose(-2, -1)
        local = torch.gather(rel_logits, 3, to_abs.expand(b, h, t, t))
        scores = scores + torch.where(abs_valid, local, torch.zeros_like(local))
        scores = scores.masked_fill(attn_mask == 0, -1e4)
        p_attn = F.softmax(scores, dim=-1)
        out = torch.matmul(p_attn, v)
        rel_weights = torch.gather(p_attn, 3, to_rel.expand(b, h, t, 2 * self.window + 1))
        rel_weights = torch.where(rel_valid, rel_weights, torch.zeros_like(rel_weights))
        out = out + torch.matmul(rel_weights, self.emb_rel_v)
        out = out.transpose(2, 3).reshape(b, c, t)
        return self.conv_o(out)


class FFN(nn.Module):
    """Two same-padded convolutions with a ReLU, masked like VITS masks them."""

    def __init__(self, arch: Architecture, prefix: str) -> None:
        super().__init__()
        k = arch.ffn_kernel
        self.pads = ((k - 1) // 2, k // 2)
        self.conv_1 = Conv(arch.hidden, arch.filter, arch.conv(f"{prefix}.conv_1"))
        self.conv_2 = Conv(arch.filter, arch.hidden, arch.conv(f"{prefix}.conv_2"))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv_1(F.pad(x * mask, self.pads)))
        x = self.conv_2(F.pad(x * mask, self.pads))
        return x * mask


class Encoder(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        n = arch.layers
        self.attn_layers = nn.ModuleList(
            MultiHeadAttention(arch.hidden, arch.heads, arch.window) for _ in range(n)
        )
        self.norm_layers_1 = nn.ModuleList(LayerNorm(arch.hidden) for _ in range(n))
        self.ffn_layers = nn.ModuleList(
            FFN(arch, f"enc_p.encoder.ffn_layers.{i}") for i in range(n)
        )
        self.norm_layers_2 = nn.ModuleList(LayerNorm(arch.hidden) for _ in range(n))

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor, segments: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``segments`` [b, 1, t]: which sentence each position holds, when a row holds
        several; attention then stays within a sentence (its relative positions too:
        outside it the weights are zero), as if each ran alone."""
        attn_mask = mask.unsqueeze(2) * mask.unsqueeze(-1)
        if segments is not None:
            attn_mask = attn_mask * (segments.unsqueeze(2) == segments.unsqueeze(-1)).to(mask.dtype)
        x = x * mask
        for attn, norm_1, ffn, norm_2 in zip(
            self.attn_layers, self.norm_layers_1, self.ffn_layers, self.norm_layers_2, strict=True
        ):
            x = norm_1(x + attn(x, attn_mask))
            x = norm_2(x + ffn(x, mask))
        return x * mask


class TextEncoder(nn.Module):
    """Phoneme ids -> hidden states and the prior's mean and log-scale per phoneme."""

    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.hidden = arch.hidden
        self.inter = arch.inter
        self.emb = nn.Embedding(arch.n_vocab, arch.hidden)
        self.encoder = Encoder(arch)
        self.proj = nn.Conv1d(arch.hidden, arch.inter * 2, 1)

    def forward(
        self, ids: torch.Tensor, lengths: torch.Tensor, segments: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``segments`` [b, t] (0: a gap, else the sentence's number in its row) packs
        several sentences a row; ``lengths`` is then unused."""
        x = self.emb(ids) * math.sqrt(self.hidden)
        x = x.transpose(1, -1)
        seg = None if segments is None else segments.unsqueeze(1)
        mask = sequence_mask(lengths, x.size(2)) if seg is None else (seg > 0).to(torch.float32)
        x = self.encoder(x * mask, mask, seg)
        stats = self.proj(x) * mask
        m, logs = torch.split(stats, self.inter, dim=1)
        return x, m, logs, mask
