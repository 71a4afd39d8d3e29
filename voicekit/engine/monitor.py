"""Memory monitor: samples process RSS (and GPU memory, when given a probe) in a thread.

It keeps a history for the run summary (peak, mean) and raises each kind of
warning once per run — GPU memory above ``threshold`` of the device, system
RAM above ``threshold`` — for the pipeline to put in a Progress event's
``warnings`` (see :meth:`MemoryMonitor.take_warnings`).
"""

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
    """Used memory of the whole GPU (all processes): what running out depends on."""
    peak_gpu_mb: float | None = None
    mean_gpu_mb: float | None = None
    gpu_total_mb: float | None = None
    ram_percent: float | None = None
    """System RAM in use, percent (all processes)."""
    samples: int = 0
    history: list[tuple[float, float, float | None]] = field(default_factory=list, repr=False)
    """(seconds since start, rss MB, gpu MB) per kept sample, for the run summary."""

    @property
    def gpu_fraction(self) -> float | None:
        if self.gpu_mb is None or not self.gpu_total_mb:
            return None
        return self.gpu_mb / self.gpu_total_mb

    @property
    def peak_gpu_fraction(self) -> float | None:
        if self.peak_gpu_mb is None or not self.gpu_total_mb:
            return None
        return self.peak_gpu_mb / self.gpu_total_mb

    def summary(self) -> dict[str, float | int | None]:
        """Peak and mean figures, rounded, for a run summary or ``--json``."""

        def r(x: float | None) -> float | None:
            return None if x is None else round(x, 1)

        return {
            "peak_rss_mb": r(self.peak_rss_mb),
            "mean_rss_mb": r(self.mean_rss_mb),
            "peak_gpu_mb": r(self.peak_gpu_mb),
            "mean_gpu_mb": r(self.mean_gpu_mb),
            "gpu_total_mb": r(self.gpu_total_mb),
            "samples": self.samples,
        }


GpuProbe = Callable[[], tuple[float, float] | None]
"""Returns (used MB, total MB) of the run's GPU, or None when there is none."""
RamProbe = Callable[[], float]
"""Returns the system's RAM use in percent."""


def _ram_percent() -> float:
    return float(psutil.virtual_memory().percent)


class MemoryMonitor:
    """Background sampler; ``stats`` is safe to read at any time."""

    def __init__(
        self,
        interval: float = 0.25,
        gpu_probe: GpuProbe | None = None,
        max_history: int = 20000,
        *,
        threshold: float = 0.9,
        device: str = "GPU",
        ram_probe: RamProbe | None = _ram_percent,
    ) -> None:
        self.interval = interval
        self.gpu_probe = gpu_probe
        self.ram_probe = ram_probe
        self.threshold = threshold
        self.device = device
        self.stats = MemoryStats()
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = time.monotonic()
        self._sum_rss = 0.0
        self._sum_gpu = 0.0
        self._gpu_samples = 0
        self._max_history = max(2, max_history)
        self._every = 1  # keep every n-th sample once the history has been thinned
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._warned: set[str] = set()
        self.warnings: list[str] = []
        """Every warning raised this run, in order (for the summary)."""

    def sample(self) -> MemoryStats:
        rss = self._process.memory_info().rss / 2**20
        gpu = self.gpu_probe() if self.gpu_probe else None
        ram = self.ram_probe() if self.ram_probe else None
        with self._lock:
            s = self.stats
            s.samples += 1
            s.rss_mb = rss
            s.peak_rss_mb = max(s.peak_rss_mb, rss)
            self._sum_rss += rss
            s.mean_rss_mb = self._sum_rss / s.samples
            s.ram_percent = ram
            if gpu is not None:
                used, total = gpu
                s.gpu_mb, s.gpu_total_mb = used, total
                s.peak_gpu_mb = max(s.peak_gpu_mb or 0.0, used)
                self._sum_gpu += used
                self._gpu_samples += 1  # a failed GPU read must not drag the mean down
                s.mean_gpu_mb = self._sum_gpu / self._gpu_samples
            if (s.samples - 1) % self._every == 0:
                s.history.append(
                    (time.monotonic() - self._start, rss, None if gpu is None else gpu[0])
                )
                if len(s.history) >= self._max_history:
                    # A long book outlives any fixed window: halve the resolution, keep the span.
                    del s.history[1::2]
                    self._every *= 2
            self._check(gpu, ram)
        return s

    def _check(self, gpu: tuple[float, float] | None, ram: float | None) -> None:
        if gpu is not None and gpu[1] > 0 and gpu[0] / gpu[1] > self.threshold:
            self._warn(
                "gpu",
                (
                    f"{self.device} memory above {self.threshold:.0%}: {gpu[0]:,.0f} of "
                    f"{gpu[1]:,.0f} MB in use; lower --batch-size or set --chunk-frames if it "
                    "runs out"
                ),
            )
        if ram is not None and ram > self.threshold * 100:
            self._warn(
                "ram",
                (
                    f"system memory above {self.threshold:.0%} ({ram:.0f}% in use; this process "
                    f"{self.stats.rss_mb:,.0f} MB)"
                ),
            )

    def _warn(self, kind: str, message: str) -> None:
        if kind in self._warned:
            return
        self._warned.add(kind)
        self._pending.append(message)
        self.warnings.append(message)

    def warn(self, message: str) -> None:
        """Queue a warning from elsewhere (e.g. a lowered batch) for the next Progress event."""
        with self._lock:
            self._warn(message, message)

    def take_warnings(self) -> list[str]:
        """Warnings raised since the last call, each kind at most once per run."""
        with self._lock:
            out, self._pending = self._pending, []
        return out

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
