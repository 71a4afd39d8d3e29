"""The prior's noise for a packed call, drawn in a thread pool, real frames only.

Each utterance has its own generator (``Noise``, seeded by its key), which has
already drawn the duration noise; its prior noise comes next, ``channels x frames``
values and no more: padding frames are zeros, never drawn. Utterances are
independent, so a pool draws them side by side (numpy releases the GIL while it
fills) straight into one host buffer, pinned on CUDA, so each utterance's block
uploads with a non-blocking copy. The bytes are those of ``Noise.prior``, pool or
not; the draws are handed out in the order the rows need them, so the first rows'
flow can start while later noise is still being drawn. A 10-hour book is about 6e8
values, some 30 s of one core: on a GPU that is the whole run's budget at 1,000x.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch

from voicekit.backends.base import Noise

NOISE_THREADS = 4
"""Threads drawing noise (fewer on a machine with fewer cores)."""


def noise_pool(threads: int | None = None) -> ThreadPoolExecutor | None:
    """A pool of ``threads`` (default: ``NOISE_THREADS``, at most the cores); None for 0."""
    n = min(NOISE_THREADS, os.cpu_count() or 1) if threads is None else threads
    return ThreadPoolExecutor(n, thread_name_prefix="voicekit-noise") if n > 0 else None


class PriorNoise:
    """Utterance ``i``'s prior noise [channels, frames[i]] in one (pinned) host buffer."""

    def __init__(
        self,
        noises: Sequence[Noise],
        channels: int,
        frames: Sequence[int],
        order: Sequence[int],
        pool: ThreadPoolExecutor | None,
        pinned: bool,
    ) -> None:
        starts = np.concatenate([[0], np.cumsum([channels * n for n in frames])])
        self.buffer = torch.empty(int(starts[-1]), dtype=torch.float32, pin_memory=pinned)
        flat = self.buffer.numpy()
        self._views = [
            self.buffer[starts[i] : starts[i + 1]].view(channels, n) for i, n in enumerate(frames)
        ]
        self._pending: dict[int, Future[None]] = {}
        for i in dict.fromkeys(order):  # first need first
            out = flat[starts[i] : starts[i + 1]].reshape(channels, frames[i])
            if pool is None:
                noises[i].prior_into(out)
            else:
                self._pending[i] = pool.submit(noises[i].prior_into, out)

    def get(self, item: int) -> torch.Tensor:
        """Utterance ``item``'s noise, once drawn (a view of the host buffer)."""
        done = self._pending.pop(item, None)
        if done is not None:
            done.result()
        return self._views[item]
