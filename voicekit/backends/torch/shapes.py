"""Shapes the torch backend runs at, without importing torch.

engine/memory.py estimates a run's GPU memory from these same numbers and
functions before the backend (and torch) is loaded, so they live here,
importable on their own: one definition keeps the estimate and the real
shapes from drifting apart.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

from voicekit.backends.base import BACKENDS

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
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


def bucket(value: int, buckets: Sequence[int]) -> int | None:
    """The smallest bucket holding ``value``; None when it is larger than them all."""
    i = bisect.bisect_left(buckets, value)
    return buckets[i] if i < len(buckets) else None


def padded(value: int, buckets: Sequence[int], quantum: int = 64) -> int:
    """``value`` rounded up to its bucket, or to a multiple of ``quantum`` past the last."""
    b = bucket(value, buckets)
    return b if b is not None else -(-value // quantum) * quantum


def pad_lengths(chunk: int = 0, overlap: int = 0) -> tuple[int, ...]:
    """The length buckets, plus the exact window sizes chunked vocoding makes."""
    extra = {chunk + overlap, chunk + 2 * overlap} if chunk > 0 else set()
    return tuple(sorted(set(PAD_LENGTHS) | extra))


def padded_shape(
    batch: int, length: int, bucketing: bool, lengths: Sequence[int] = PAD_LENGTHS
) -> tuple[int, int]:
    """(batch, length) padded up to their buckets when bucketing, else as they are."""
    if not bucketing:
        return batch, length
    return padded(batch, BATCH_BUCKETS, 64), padded(length, lengths, 512)


def batch_groups(
    lengths: Sequence[int],
    max_batch: int,
    frame_budget: int,
    bucketing: bool,
    buckets: Sequence[int] = PAD_LENGTHS,
) -> Iterator[list[int]]:
    """Consecutive items (sorted longest first) in batches of at most ``max_batch``
    whose padded size, rows x frames, stays within ``frame_budget``."""
    group: list[int] = []
    for k in range(len(lengths)):
        if group:
            rows, frames = padded_shape(len(group) + 1, lengths[group[0]], bucketing, buckets)
            if len(group) >= max_batch or rows * frames > frame_budget:
                yield group
                group = []
        group.append(k)
    if group:
        yield group
