"""Memory monitor: samples process RSS (and GPU memory, when given a probe) in a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil


@dataclass
class MemoryStats:
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    mean_rss_mb: float = 0.0
    gpu_mb: float | None = None
    peak_gpu_mb: float | None = None
    mean_gpu_mb: float | None = None
    gpu_total_mb: float | None = None
    samples: int = 0
    history: list[tuple[float, float, float | None]] = field(default_factory=list, repr=False)
    """(seconds since start, rss MB, gpu MB) per sample, for the run summary."""

    @property
    def gpu_fraction(self) -> float | None:
        if self.gpu_mb is None or not self.gpu_total_mb:
            return None
        return self.gpu_mb / self.gpu_total_mb


GpuProbe = Callable[[], tuple[float, float] | None]
"""Returns (used MB, total MB) of the run's GPU, or None when there is none."""


class MemoryMonitor:
    """Background sampler; ``stats`` is safe to read at any time."""

    def __init__(
        self, interval: float = 0.25, gpu_probe: GpuProbe | None = None, max_history: int = 20000
    ) -> None:
        self.interval = interval
        self.gpu_probe = gpu_probe
        self.stats = MemoryStats()
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self._sum_rss = 0.0
        self._sum_gpu = 0.0
        self._max_history = max_history
        self._lock = threading.Lock()

    def sample(self) -> MemoryStats:
        rss = self._process.memory_info().rss / 2**20
        gpu = self.gpu_probe() if self.gpu_probe else None
        with self._lock:
            s = self.stats
            s.samples += 1
            s.rss_mb = rss
            s.peak_rss_mb = max(s.peak_rss_mb, rss)
            self._sum_rss += rss
            s.mean_rss_mb = self._sum_rss / s.samples
            if gpu is not None:
                used, total = gpu
                s.gpu_mb, s.gpu_total_mb = used, total
                s.peak_gpu_mb = max(s.peak_gpu_mb or 0.0, used)
                self._sum_gpu += used
                s.mean_gpu_mb = self._sum_gpu / s.samples
            if len(s.history) < self._max_history:
                s.history.append(
                    (time.monotonic() - self._start, rss, None if gpu is None else gpu[0])
                )
        return s

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def start(self) -> MemoryMonitor:
        self.sample()
        self._thread = threading.Thread(target=self._loop, name="voicekit-memory", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> MemoryStats:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        return self.sample()

    def __enter__(self) -> MemoryMonitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
