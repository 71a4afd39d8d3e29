"""Shapes the torch backend runs at on CUDA, without importing torch.

engine/memory.py estimates a run's GPU memory from these same numbers before the
backend (and torch) is loaded, so they live here, importable on their own.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
LENGTH_BUCKETS = (
    16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024,
    1280, 1536, 2048, 2560, 3072, 4096,
)  # fmt: skip
CUDA_VOCODER_BATCH = 64
"""Chunk windows vocoded together on CUDA."""
CUDA_FRAME_BUDGET = 32768
"""Padded latent frames per vocoder call on CUDA (~6 min of audio)."""


def bucket(value: int, buckets: Sequence[int]) -> int | None:
    """The smallest bucket holding ``value``; None when it is larger than them all."""
    i = bisect.bisect_left(buckets, value)
    return buckets[i] if i < len(buckets) else None


def padded(value: int, buckets: Sequence[int], quantum: int = 64) -> int:
    """``value`` rounded up to its bucket, or to a multiple of ``quantum`` past the last."""
    b = bucket(value, buckets)
    return b if b is not None else -(-value // quantum) * quantum
