"""Memory monitor: samples the run's RSS, children included (and GPU memory, when given a
probe), in a thread.

It keeps the peaks and means the run result reports and raises each kind of
warning once per run — GPU memory above ``threshold`` of the device, system
RAM above ``threshold`` — for the pipeline to put in a Progress event's
``warnings`` (see :meth:`MemoryMonitor.take_warnings`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import psutil

WARN_FRACTION = 0.9
"""Default share of GPU memory (or system RAM) above which a run is warned."""


@dataclass
class MemoryStats:
    rss_mb: float = 0.0
    peak_rss_mb: float = 0.0
    mean_rss_mb: float = 0.0
    gpu_mb: float | None = None
    """Used memory of the whole GPU (all processes): what running out depends on."""
    peak_gpu_mb: float | None = None
    gpu_total_mb: float | None = None
    samples: int = 0

    @property
    def gpu_fraction(self) -> float | None:
        if self.gpu_mb is None or not self.gpu_total_mb:
            return None
        return self.gpu_mb / self.gpu_total_mb


GpuProbe = Callable[[], tuple[float, float] | None]
"""Returns (used MB, total MB) of the run's GPU, or None when there is none."""
RamProbe = Callable[[], float]
"""Returns the system's RAM use in percent."""


def _ram_percent() -> float:
    return float(psutil.virtual_memory().percent)


def tree_rss(process: psutil.Process) -> int:
    """Bytes resident in ``process`` and its descendants (workers, phonemizers, ffmpeg).

    A child caught between fork and exec (Python starting an ffmpeg) still has its
    parent's command line and all of its parent's pages, which it only shares: counted,
    about one sample run in four read 706-746 MB for a run whose peak was 433-461 MB
    (docs/BENCHMARKS.md, section 14.5). Such a child is left out. Worker processes are
    spawned, so their command line is their own and they count.
    """
    total = process.memory_info().rss
    try:
        children = process.children(recursive=True)
        lines = {process.pid: process.cmdline()}
    except psutil.Error:
        return total
    for child in children:  # parents come before their children
        try:
            lines[child.pid] = line = child.cmdline()
            if line == lines.get(child.ppid()):
                continue
            total += child.memory_info().rss
        except psutil.Error:  # it ended between the listing and the reading
            continue
    return total


class MemoryMonitor:
    """Background sampler; ``stats`` is safe to read at any time."""

    def __init__(
        self,
        interval: float = 0.25,
        gpu_probe: GpuProbe | None = None,
        *,
        threshold: float = WARN_FRACTION,
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
        self._sum_rss = 0.0
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._warned: set[str] = set()

    def _rss_mb(self) -> float:
        """This process and its children: ``--workers`` processes, phonemizers, ffmpeg.

        A run's memory is all of it; the main process alone is a small part when
        the voice lives in worker processes.
        """
        return tree_rss(self._process) / 2**20

    def sample(self) -> MemoryStats:
        rss = self._rss_mb()
        gpu = self.gpu_probe() if self.gpu_probe else None
        ram = self.ram_probe() if self.ram_probe else None
        with self._lock:
            s = self.stats
            s.samples += 1
            s.rss_mb = rss
            s.peak_rss_mb = max(s.peak_rss_mb, rss)
            self._sum_rss += rss
            s.mean_rss_mb = self._sum_rss / s.samples
            if gpu is not None:  # a failed read keeps the last figure rather than blanking it
                used, total = gpu
                s.gpu_mb, s.gpu_total_mb = used, total
                s.peak_gpu_mb = max(s.peak_gpu_mb or 0.0, used)
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
