"""What NVML (the driver's own library) says: the GPUs, their memory, and a snapshot of
the machine for ``voicekit gpu`` (every NVIDIA GPU, RAM and CPU).

NVML numbers every GPU in PCI order, while CUDA (torch, onnxruntime) numbers
only those in ``CUDA_VISIBLE_DEVICES``; :func:`nvml_gpus` returns the visible
ones with their CUDA index so ``cuda:N`` always means what torch means by it.

NVML reads counters from the driver without creating a CUDA context, so it is
cheap enough to poll every second. Any one counter a GPU does not support
(power on some boards, processes inside containers) is None, not an error.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

import psutil

T = TypeVar("T")


@dataclass
class GpuProcess:
    pid: int
    name: str
    used_mb: float | None
    """GPU memory of this process; None where the driver does not say (containers, WDDM)."""
    kind: str = "compute"
    """``compute`` (CUDA) or ``graphics``."""


@dataclass
class GpuStatus:
    index: int
    """NVML index (PCI order; may differ from CUDA's under CUDA_VISIBLE_DEVICES)."""
    name: str
    uuid: str
    memory_used_mb: float
    memory_total_mb: float
    utilization_pct: float | None = None
    memory_utilization_pct: float | None = None
    temperature_c: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    processes: list[GpuProcess] = field(default_factory=list)
    cuda_index: int | None = None
    """What voicekit and torch call it (``cuda:N``); None when CUDA_VISIBLE_DEVICES hides it."""

    @property
    def memory_fraction(self) -> float:
        return self.memory_used_mb / self.memory_total_mb if self.memory_total_mb else 0.0


@dataclass
class SystemStatus:
    ram_used_mb: float
    ram_total_mb: float
    ram_percent: float
    cpu_percent: float
    cpu_logical: int
    cpu_physical: int | None
    load_average: list[float] | None


@dataclass
class Snapshot:
    gpus: list[GpuStatus]
    system: SystemStatus
    driver: str | None = None
    cuda_driver: str | None = None
    """Newest CUDA version the driver supports (``12.4``)."""
    note: str = ""
    """Why there are no GPUs, when there are none."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def nvml_text(value: Any) -> str:
    """NVML strings: bytes from older nvidia-ml-py releases, str from newer ones."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _try(fn: Callable[[], T]) -> T | None:
    try:
        return fn()
    except Exception:  # NVMLError_NotSupported and friends: the counter is just absent
        return None


def cuda_version_text(version: int | None) -> str | None:
    """NVML's 12040 -> ``12.4``."""
    if not version:
        return None
    return f"{version // 1000}.{(version % 1000) // 10}"


class Nvml:
    """An NVML session, opened once (``--watch`` polls through the same one).

    ``module`` is pynvml while open, None when NVML is unavailable (``error`` says why).
    """

    def __init__(self) -> None:
        self.module: Any = None
        self.error = ""

    def __enter__(self) -> Nvml:
        try:
            import pynvml
        except ImportError:
            self.error = "nvidia-ml-py is not installed (pip install nvidia-ml-py)"
            return self
        try:
            pynvml.nvmlInit()
        except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...
            self.error = f"no NVIDIA driver found: {exc}"
            return self
        self.module = pynvml
        return self

    def __exit__(self, *exc: object) -> None:
        if self.module is not None:
            with contextlib.suppress(Exception):
                self.module.nvmlShutdown()
            self.module = None

    def gpus(self) -> list[GpuStatus]:
        nv = self.module
        if nv is None:
            return []
        out = []
        for i in range(_try(nv.nvmlDeviceGetCount) or 0):
            handle = _try(lambda i=i: nv.nvmlDeviceGetHandleByIndex(i))
            if handle is None:
                continue
            out.append(self._gpu(i, handle))
        return out

    def _gpu(self, index: int, handle: Any) -> GpuStatus:
        nv = self.module
        mem = _try(lambda: nv.nvmlDeviceGetMemoryInfo(handle))
        util = _try(lambda: nv.nvmlDeviceGetUtilizationRates(handle))
        temp = _try(lambda: nv.nvmlDeviceGetTemperature(handle, nv.NVML_TEMPERATURE_GPU))
        power = _try(lambda: nv.nvmlDeviceGetPowerUsage(handle))  # milliwatts
        limit = _try(lambda: nv.nvmlDeviceGetEnforcedPowerLimit(handle))
        return GpuStatus(
            index=index,
            name=nvml_text(_try(lambda: nv.nvmlDeviceGetName(handle)) or "?"),
            uuid=nvml_text(_try(lambda: nv.nvmlDeviceGetUUID(handle)) or ""),
            memory_used_mb=mem.used / 2**20 if mem else 0.0,
            memory_total_mb=mem.total / 2**20 if mem else 0.0,
            utilization_pct=None if util is None else float(util.gpu),
            memory_utilization_pct=None if util is None else float(util.memory),
            temperature_c=None if temp is None else float(temp),
            power_w=None if power is None else power / 1000,
            power_limit_w=None if limit is None else limit / 1000,
            processes=self._processes(handle),
        )

    def _processes(self, handle: Any) -> list[GpuProcess]:
        nv = self.module
        found: dict[int, GpuProcess] = {}
        for kind, getter in (
            ("compute", "nvmlDeviceGetComputeRunningProcesses"),
            ("graphics", "nvmlDeviceGetGraphicsRunningProcesses"),
        ):
            fn = getattr(nv, getter, None)
            for proc in (_try(lambda fn=fn: fn(handle)) if fn else None) or []:
                pid = int(proc.pid)
                if pid in found:
                    continue
                used = getattr(proc, "usedGpuMemory", None)
                # NVML reports "not available" as None or as the all-ones sentinel.
                used_mb = None if used is None or used >= 2**63 else used / 2**20
                found[pid] = GpuProcess(pid, process_name(pid), used_mb, kind)
        return sorted(found.values(), key=lambda p: -(p.used_mb or 0))

    def driver(self) -> tuple[str | None, str | None]:
        nv = self.module
        if nv is None:
            return None, None
        driver = _try(nv.nvmlSystemGetDriverVersion)
        cuda = _try(nv.nvmlSystemGetCudaDriverVersion)
        return (None if driver is None else nvml_text(driver)), cuda_version_text(cuda)


def process_name(pid: int) -> str:
    try:
        return psutil.Process(pid).name()
    except Exception:  # gone, or in another PID namespace (containers)
        return "?"


def system_status(cpu_interval: float | None = 0.1) -> SystemStatus:
    """RAM and CPU; ``cpu_interval`` None measures since the previous call (``--watch``)."""
    vm = psutil.virtual_memory()
    load = None
    with contextlib.suppress(OSError, AttributeError):
        load = [round(x, 2) for x in os.getloadavg()]
    return SystemStatus(
        ram_used_mb=(vm.total - vm.available) / 2**20,
        ram_total_mb=vm.total / 2**20,
        ram_percent=float(vm.percent),
        cpu_percent=float(psutil.cpu_percent(interval=cpu_interval)),
        cpu_logical=psutil.cpu_count() or 1,
        cpu_physical=psutil.cpu_count(logical=False),
        load_average=load,
    )


def snapshot(nvml: Nvml | None = None, cpu_interval: float | None = 0.1) -> Snapshot:
    """GPUs and system now; opens (and closes) its own NVML session when given none."""
    if nvml is None:
        with Nvml() as session:
            return snapshot(session, cpu_interval)
    gpus = nvml.gpus()
    _set_cuda_indices(gpus)
    driver, cuda = nvml.driver()
    note = ""
    if not gpus:
        note = nvml.error or "the NVIDIA driver reports no GPU"
    return Snapshot(gpus, system_status(cpu_interval), driver, cuda, note)


def _set_cuda_indices(gpus: list[GpuStatus]) -> None:
    """Number ``gpus`` as CUDA does, so the table matches ``--device cuda:N``."""
    infos = [GpuInfo(g.index, g.name, g.memory_total_mb, 0.0, g.index, g.uuid) for g in gpus]
    cuda = {g.nvml: g.index for g in visible(infos, os.environ.get("CUDA_VISIBLE_DEVICES"))}
    for g in gpus:
        g.cuda_index = cuda.get(g.index)


def watch(
    interval: float, count: int | None = None, sleep: Callable[[float], None] | None = None
) -> Iterator[Snapshot]:
    """Snapshots every ``interval`` seconds, ``count`` of them (None: until interrupted)."""
    pause = sleep or time.sleep
    with Nvml() as session:
        psutil.cpu_percent(interval=None)  # prime: the first reading is since this call
        n = 0
        while count is None or n < count:
            if n:
                pause(interval)
            yield snapshot(session, cpu_interval=None if n else 0.1)
            n += 1


@dataclass(frozen=True)
class GpuInfo:
    index: int
    """CUDA index (``cuda:N``), after ``CUDA_VISIBLE_DEVICES``."""
    name: str
    total_mb: float
    free_mb: float
    nvml_index: int = -1
    """NVML's index of the same GPU (-1: same as ``index``)."""
    uuid: str = ""

    @property
    def nvml(self) -> int:
        return self.index if self.nvml_index < 0 else self.nvml_index


def nvml_all_gpus() -> list[GpuInfo]:
    """Every NVIDIA GPU the driver reports (NVML order); empty without a driver or GPU."""
    with Nvml() as session:
        nv = session.module
        if nv is None:
            return []
        try:
            gpus = []
            for i in range(nv.nvmlDeviceGetCount()):
                handle = nv.nvmlDeviceGetHandleByIndex(i)
                mem = nv.nvmlDeviceGetMemoryInfo(handle)
                uuid = ""
                with contextlib.suppress(Exception):
                    uuid = nvml_text(nv.nvmlDeviceGetUUID(handle))
                name = nvml_text(nv.nvmlDeviceGetName(handle))
                gpus.append(GpuInfo(i, name, mem.total / 2**20, mem.free / 2**20, i, uuid))
            return gpus
        except Exception:  # NVMLError mid-way (GPU fell off the bus): treat as none
            return []


def visible(gpus: list[GpuInfo], env: str | None) -> list[GpuInfo]:
    """The GPUs CUDA exposes under ``CUDA_VISIBLE_DEVICES=env``, renumbered from 0.

    Follows CUDA's rules: indices or (prefixes of) UUIDs, comma-separated; the
    list stops at the first entry that names no GPU; unset means all.
    """
    if env is None:
        return gpus
    chosen: list[GpuInfo] = []
    for token in (t.strip() for t in env.split(",")):
        match: GpuInfo | None = None
        if token.isdigit():
            match = next((g for g in gpus if g.nvml == int(token)), None)
        elif token.startswith("GPU-"):
            hits = [g for g in gpus if g.uuid.startswith(token)]
            match = hits[0] if len(hits) == 1 else None
        if match is None or match in chosen:
            break
        chosen.append(match)
    return [GpuInfo(i, g.name, g.total_mb, g.free_mb, g.nvml, g.uuid) for i, g in enumerate(chosen)]


def nvml_gpus() -> list[GpuInfo]:
    """The GPUs CUDA programs here can use, by CUDA index; empty without a driver or GPU."""
    return visible(nvml_all_gpus(), os.environ.get("CUDA_VISIBLE_DEVICES"))


def memory_probe(info: GpuInfo | None) -> Callable[[], tuple[float, float] | None] | None:
    """A probe of (used MB, total MB) on one GPU for the memory monitor; None without one."""
    if info is None:
        return None
    try:
        import pynvml

        pynvml.nvmlInit()  # reference-counted by NVML; kept open for the probe's lifetime
        handle = pynvml.nvmlDeviceGetHandleByIndex(info.nvml)
    except Exception:
        return None

    def probe() -> tuple[float, float] | None:
        try:
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except Exception:
            return None
        return mem.used / 2**20, mem.total / 2**20

    return probe
