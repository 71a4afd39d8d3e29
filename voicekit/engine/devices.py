"""Which device and backend a run uses.

``auto`` takes the CUDA GPU with the most free memory and falls back to the CPU,
saying why; an explicit device that is not usable is an error.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from voicekit.errors import DependencyError, DeviceError


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    total_mb: float
    free_mb: float


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    """``cpu`` or ``cuda:N``."""
    backend: str
    """``ort`` or ``torch``."""
    notes: list[str] = field(default_factory=list)
    """What auto-selection decided and why (shown to the user)."""


def nvml_gpus() -> list[GpuInfo]:
    """NVIDIA GPUs the driver reports; empty without a driver or GPU."""
    try:
        import pynvml
    except ImportError:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:  # pynvml raises NVMLError subclasses when no driver is loaded
        return []
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(
                GpuInfo(
                    i,
                    name.decode() if isinstance(name, bytes) else str(name),
                    mem.total / 2**20,
                    mem.free / 2**20,
                )
            )
        return gpus
    except Exception:
        return []
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def torch_cuda_count() -> int:
    """CUDA devices torch can use (0 without torch, CUDA build or driver)."""
    if not torch_installed():
        return 0
    import torch

    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def ort_has_cuda() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def cuda_usable(backend: str) -> tuple[bool, str]:
    """Can ``backend`` run on CUDA here? (yes/no, and the reason when not)."""
    gpus = nvml_gpus()
    if backend == "torch":
        if not torch_installed():
            return False, "torch is not installed"
        if not gpus:  # importing torch costs ~100 MB of RSS: skip it where no GPU exists
            return False, "no NVIDIA GPU or driver found"
        if torch_cuda_count():
            return True, ""
        import torch

        if torch.version.cuda is None:
            return False, f"torch {torch.__version__} is a CPU-only build"
        return False, "torch finds no CUDA device" + ("" if gpus else " (no NVIDIA driver/GPU)")
    if not gpus:
        return False, "no NVIDIA GPU or driver found"
    if not ort_has_cuda():
        return False, "this onnxruntime build has no CUDA execution provider"
    return True, ""


def choose_device(device: str, backend: str) -> DeviceChoice:
    """Resolve ``--device`` and ``--backend`` into something that can run."""
    notes: list[str] = []
    if backend == "torch" and not torch_installed():
        raise DependencyError(
            "--backend torch needs PyTorch, which is not installed",
            hint="pip install 'voicekit[torch]'",
        )
    if device == "cpu":
        return DeviceChoice("cpu", "ort" if backend == "auto" else backend, notes)
    if device.startswith("cuda"):
        wanted = backend if backend != "auto" else ("torch" if torch_installed() else "ort")
        ok, why = cuda_usable(wanted)
        if not ok and backend == "auto" and wanted == "torch":
            wanted = "ort"
            ok, why2 = cuda_usable("ort")
            why = why if ok else f"{why}; {why2}"
        if not ok:
            raise DeviceError(
                f"--device {device}: CUDA is not usable here ({why})",
                hint="voicekit doctor explains what is missing; or use --device cpu",
            )
        index = int(device.partition(":")[2] or _best_gpu_index())
        count = max(len(nvml_gpus()), torch_cuda_count() if wanted == "torch" else 0)
        if count and index >= count:
            raise DeviceError(f"--device {device}: there are only {count} CUDA device(s)")
        return DeviceChoice(f"cuda:{index}", wanted, notes)
    # auto
    for candidate in ["torch", "ort"] if backend == "auto" else [backend]:
        ok, why = cuda_usable(candidate)
        if ok:
            index = _best_gpu_index()
            notes.append(f"using cuda:{index} ({candidate})")
            return DeviceChoice(f"cuda:{index}", candidate, notes)
        if nvml_gpus():  # a GPU is there but CUDA did not start: that deserves a warning
            notes.append(f"warning: GPU found but {candidate} cannot use it ({why})")
    if not nvml_gpus():
        notes.append("no CUDA GPU found; running on the CPU")
    else:
        notes.append("warning: falling back to the CPU (run `voicekit doctor` for the fix)")
    return DeviceChoice("cpu", "ort" if backend == "auto" else backend, notes)


def _best_gpu_index() -> int:
    gpus = nvml_gpus()
    if not gpus:
        return 0
    return max(gpus, key=lambda g: g.free_mb).index


def gpu_probe_for(device: str) -> Callable[[], tuple[float, float] | None] | None:
    """A probe of (used MB, total MB) on ``device`` for the memory monitor; None on the CPU."""
    if not device.startswith("cuda"):
        return None
    index = int(device.partition(":")[2] or 0)
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    except Exception:
        return None

    def probe() -> tuple[float, float] | None:
        try:
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
        except Exception:
            return None
        return mem.used / 2**20, mem.total / 2**20

    return probe
