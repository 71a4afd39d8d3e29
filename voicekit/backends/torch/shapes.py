"""Shapes the torch backend runs at, without importing torch.

On CUDA the backend pads each call's batch and length up to a few fixed sizes
(``PAD_BATCHES``, ``PAD_LENGTHS``), so cuDNN autotuning, compiles and CUDA graphs
see a bounded set of shapes. backends/memory.py estimates a run's GPU memory from
these same numbers and functions before the backend (and torch) is loaded, so
they live here, importable on their own: one definition keeps the estimate and
the real shapes from drifting apart.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from voicekit.backends.base import BACKENDS

PAD_BATCHES = (1, 2, 4, 8, 16, 32, 64)
PAD_LENGTHS = (
    16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024,
    1280, 1536, 2048, 2560, 3072, 4096,
)  # fmt: skip
CUDA_VOCODER_BATCH = BACKENDS["torch"].cuda_batch
"""Chunk windows vocoded together on CUDA."""
CUDA_FRAME_BUDGET = 32768
"""Padded latent frames per vocoder call on CUDA (~6 min of audio)."""
CPU_FRAME_BUDGET = 1 << 30
"""No frame cap on the CPU: the batch size alone bounds a vocoder call there."""


def fitting_size(value: int, sizes: Sequence[int]) -> int | None:
    """The smallest of ``sizes`` holding ``value``; None when it is larger than them all."""
    i = bisect.bisect_left(sizes, value)
    return sizes[i] if i < len(sizes) else None


def padded(value: int, sizes: Sequence[int], quantum: int = 64) -> int:
    """``value`` rounded up to its size, or to a multiple of ``quantum`` past the last."""
    size = fitting_size(value, sizes)
    return size if size is not None else -(-value // quantum) * quantum


def pad_lengths(chunk: int = 0, overlap: int = 0) -> tuple[int, ...]:
    """The lengths calls are padded to, plus the exact window sizes chunked vocoding makes."""
    extra = {chunk + overlap, chunk + 2 * overlap} if chunk > 0 else set()
    return tuple(sorted(set(PAD_LENGTHS) | extra))


def padded_shape(
    batch: int, length: int, pad: bool, pad_to: Sequence[int] = PAD_LENGTHS
) -> tuple[int, int]:
    """(batch, length) padded up to ``PAD_BATCHES`` and ``pad_to`` when ``pad``, else as is."""
    if not pad:
        return batch, length
    return padded(batch, PAD_BATCHES, 64), padded(length, pad_to, 512)


def batch_groups(
    lengths: Sequence[int],
    max_batch: int,
    frame_budget: int,
    pad: bool,
    pad_to: Sequence[int] = PAD_LENGTHS,
) -> Iterator[list[int]]:
    """Consecutive items (sorted longest first) in batches of at most ``max_batch``
    whose padded size, rows x frames, stays within ``frame_budget``."""
    group: list[int] = []
    for k in range(len(lengths)):
        if group:
            rows, frames = padded_shape(len(group) + 1, lengths[group[0]], pad, pad_to)
            if len(group) >= max_batch or rows * frames > frame_budget:
                yield group
                group = []
        group.append(k)
    if group:
        yield group
