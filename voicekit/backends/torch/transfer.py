"""Copies to the host that the host waits for only when it needs the values.

On CUDA a copy goes to a pinned host buffer with ``non_blocking=True`` and an event
is recorded behind it on the current stream: the host goes on (queues more work,
lets the feed and writer threads run) and waits on that event alone, never on a
whole stream or the device. On the CPU the same calls run with plain memory and no
event, so the CPU tests walk the same code.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from voicekit.backends.base import StageTimes


class HostCopy:
    """``tensor`` on its way to the host; ``wait()`` gives it as a numpy array."""

    def __init__(self, tensor: torch.Tensor, cuda: bool) -> None:
        self.host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=cuda)
        self.host.copy_(tensor, non_blocking=cuda)
        self.event: Any = None
        if cuda:
            self.event = torch.cuda.Event()
            self.event.record()

    def ready(self) -> bool:
        """Whether ``wait()`` would return at once."""
        return self.event is None or bool(self.event.query())

    def wait(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.host.numpy()


@dataclass
class Placed:
    """Samples ``src`` of row ``row`` of a call's output are utterance ``item``'s ``dst``."""

    item: int
    row: int
    src: slice
    dst: slice


class PendingAudio:
    """Vocoder output on its way to the host; ``result()`` waits for it."""

    def __init__(self, sizes: list[int]) -> None:
        self._out = [np.empty(n, dtype=np.float32) for n in sizes]
        self._parts: list[tuple[HostCopy, list[Placed]]] = []

    def add(self, copy: HostCopy, placed: list[Placed]) -> None:
        self._parts.append((copy, placed))

    def result(self) -> list[np.ndarray]:
        for copy, placed in self._parts:
            rows = copy.wait()
            for p in placed:
                self._out[p.item][p.dst] = rows[p.row, p.src]
        self._parts.clear()
        return self._out


class QueuedCall:
    """A whole call's audio on its way to the host (the backend's ``PendingCall``).

    ``parts`` are (positions in the call's batch, their ``PendingAudio``); ``result()``
    waits for them, as the vocoder's time, and gives the audio in batch order.
    """

    def __init__(
        self, parts: Sequence[tuple[Sequence[int], PendingAudio]], size: int, times: StageTimes
    ) -> None:
        self._parts = list(parts)
        self._size = size
        self._times = times
        self._audio: list[np.ndarray] | None = None

    def result(self) -> list[np.ndarray]:
        if self._audio is None:
            out: list[np.ndarray | None] = [None] * self._size
            with self._times.timing("vocoder"):
                for positions, pending in self._parts:
                    for i, samples in zip(positions, pending.result(), strict=True):
                        out[i] = samples
            self._parts.clear()  # its host copies: their pinned buffers go back now
            self._audio = [a for a in out if a is not None]
        return self._audio
