"""Which device and backend a run uses.

``auto`` takes the CUDA GPU with the most free memory and falls back to the CPU,
saying why; an explicit device that is not usable is an error (DeviceError).

GPU facts come from NVML (:mod:`voicekit.system.nvml`: the driver's own library,
cheap, no CUDA context). A device string (``auto``, ``cpu``, ``cuda``, ``cuda:N``)
is parsed in one place, :func:`parse_device`.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import Any, Literal

from voicekit.errors import DependencyError, DeviceError, InputError
from voicekit.system.nvml import GpuInfo, memory_probe, nvml_gpus


@dataclass(frozen=True)
class Device:
    """A device as the user names it: ``auto``, ``cpu``, ``cuda`` (the best GPU) or ``cuda:N``."""

    kind: Literal["auto", "cpu", "cuda"]
    index: int | None = None
    """The CUDA index of ``cuda:N``; None for ``cuda`` (any GPU), ``cpu`` and ``auto``."""

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def __str__(self) -> str:
        return f"cuda:{self.index}" if self.index is not None else self.kind


def parse_device(text: str) -> Device:
    """The one reader of device strings; a bad one is an InputError."""
    kind, colon, index = text.strip().lower().partition(":")
    if kind in ("auto", "cpu") and not colon:
        return Device(kind)  # type: ignore[arg-type]
    if kind == "cuda" and not colon:
        return Device("cuda")
    if kind == "cuda" and index.isdigit():
        return Device("cuda", int(index))
    raise InputError(f"device = {text!r} must be auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class DeviceChoice:
    device: str
    """``cpu`` or ``cuda:N``."""
    backend: str
    """``ort`` or ``torch``."""
    notes: list[str] = field(default_factory=list)
    """What auto-selection decided and why (shown to the user)."""


def nvidia_pci_devices() -> int:
    """NVIDIA display/3D controllers on the PCI bus (Linux; 0 where unknown).

    Present even when no driver is loaded, unlike what NVML reports.
    """
    count = 0
    for vendor in glob("/sys/bus/pci/devices/*/vendor"):
        with contextlib.suppress(OSError):
            if Path(vendor).read_text().strip() == "0x10de":
                cls = (Path(vendor).parent / "class").read_text().strip()
                count += cls.startswith("0x03")
    return count


def torch_installed() -> bool:
    return importlib.util.find_spec("torch") is not None


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def torch_cuda_count() -> int:
    """CUDA devices torch can use (0 without torch, CUDA build or driver)."""
    if not torch_installed():
        return 0
    import torch

    try:
        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def torch_arch_supported(arch_list: list[str], capability: tuple[int, int]) -> bool:
    """Can a torch build compiled for ``arch_list`` run kernels on this compute capability?

    SASS for sm_XY runs on sm_XZ with Z >= Y (same major); PTX (compute_XY) is
    JIT-compiled for any newer GPU. An empty list (unknown) is given the benefit
    of the doubt.
    """
    if not arch_list:
        return True
    major, minor = capability
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        digits = digits.rstrip("af")  # sm_90a, sm_100f: family-specific variants
        if not digits.isdigit():
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def torch_gpus_without_kernels(torch: Any, indices: Iterable[int]) -> list[int]:
    """The CUDA indices among ``indices`` this torch build has no kernels for."""
    arch = list(torch.cuda.get_arch_list())
    return [
        i
        for i in indices
        if not torch_arch_supported(arch, tuple(torch.cuda.get_device_capability(i))[:2])
    ]


def _torch_cuda_problem(gpus: list[GpuInfo]) -> str:
    """Why torch cannot use CUDA on ``gpus`` ("" when it can)."""
    import torch

    if torch.version.cuda is None:
        return f"torch {torch.__version__} is a CPU-only build"
    try:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception as exc:
        return f"torch cannot initialise CUDA ({exc})"
    if not count:
        return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable CUDA device"
    # Every visible GPU, not just cuda:0: auto or --device cuda:N may pick any of them,
    # and a GPU without kernels fails at the first launch, long after the choice.
    try:
        bad = torch_gpus_without_kernels(torch, [g.index for g in gpus if g.index < count])
    except Exception:  # capability unreadable: give it the benefit of the doubt
        return ""
    if bad:
        caps = ", ".join(
            "cuda:{} (compute capability {}.{})".format(i, *torch.cuda.get_device_capability(i))
            for i in bad
        )
        return (
            f"torch {torch.__version__} has no kernels for {caps} "
            f"(built for {', '.join(torch.cuda.get_arch_list())})"
        )
    return ""


def cuda_usable(backend: str, gpus: list[GpuInfo] | None = None) -> tuple[bool, str]:
    """Can ``backend`` run on CUDA here? (yes/no, and the reason when not)."""
    gpus = nvml_gpus() if gpus is None else gpus
    if backend == "torch":
        if not torch_installed():
            return False, "torch is not installed"
        if not gpus:  # importing torch costs ~1 s and ~100 MB: skip it where no GPU exists
            return False, "no NVIDIA GPU or driver found"
        problem = _torch_cuda_problem(gpus)
        return not problem, problem
    if not gpus:
        return False, "no NVIDIA GPU or driver found"
    # lazy: ortcuda (~5 ms) is for GPU machines only, not every start-up
    from voicekit.system.ortcuda import ort_build, probe_ort_cuda_cached

    build = ort_build()
    if build.version is None:
        return False, f"onnxruntime cannot be imported ({build.import_error})"
    if build.shadowed:
        return False, "the CPU build of onnxruntime overwrote onnxruntime-gpu (both are installed)"
    if not build.has_cuda_provider:
        return False, "this onnxruntime build has no CUDA execution provider"
    probe = probe_ort_cuda_cached(0)
    if not probe.ok:
        what = ", ".join(probe.missing) if probe.missing else probe.error
        return False, f"onnxruntime cannot start CUDA ({what or 'unknown reason'})"
    return True, ""


def _candidates(backend: str) -> list[str]:
    if backend != "auto":
        return [backend]
    return ["torch", "ort"] if torch_installed() else ["ort"]


def choose_device(device: str, backend: str) -> DeviceChoice:
    """Resolve ``--device`` and ``--backend`` into something that can run."""
    if backend == "torch" and not torch_installed():
        raise DependencyError(
            "--backend torch needs PyTorch, which is not installed",
            hint="pip install 'voicekit[torch]'",
        )
    wanted = parse_device(device)
    if backend == "openvino":
        return _openvino_choice(device, wanted)
    # auto keeps onnxruntime on the CPU even where OpenVINO is installed: OpenVINO ran
    # short sentences at 0.5-0.8x its speed, long ones at 1.1x and a whole book at
    # 1.1-1.45x, too close and too noisy for a quick calibration to call on a shared
    # machine, and took 4.6x the peak memory (docs/BENCHMARKS.md, section 12).
    cpu_backend = "ort" if backend == "auto" else backend
    if wanted.kind == "cpu":
        return DeviceChoice("cpu", cpu_backend, [])
    gpus = nvml_gpus()
    reasons: list[str] = [] if gpus else ["no NVIDIA GPU or driver found"]
    chosen: str | None = None
    for candidate in _candidates(backend) if gpus else []:
        ok, why = cuda_usable(candidate, gpus)
        if ok:
            chosen = candidate
            break
        reasons.append(f"{candidate}: {why}")
    notes = _backend_notes(backend, chosen, reasons)
    if wanted.is_cuda:
        if chosen is None:
            raise DeviceError(
                f"--device {device}: CUDA is not usable here ({'; '.join(reasons)})",
                hint="`voicekit doctor` explains what is missing; or use --device cpu",
            )
        if wanted.index is not None:
            index = wanted.index
            if gpus and index >= len(gpus):
                raise DeviceError(
                    f"--device {device}: there are only {len(gpus)} CUDA device(s) "
                    f"(cuda:0 to cuda:{len(gpus) - 1})",
                    hint="`voicekit gpu` lists them",
                )
        else:
            index = best_gpu_index(gpus)
        return DeviceChoice(f"cuda:{index}", chosen, notes)
    # auto
    if not gpus:
        # A machine without a GPU is not news on every run (doctor says it once); a GPU
        # the driver does not answer for is, since the user expects it to be used.
        pci = nvidia_pci_devices()
        if not pci:
            return DeviceChoice("cpu", cpu_backend, [])
        return DeviceChoice("cpu", cpu_backend, [
            f"warning: {pci} NVIDIA GPU(s) on the PCI bus but no working driver "
            "(NVML finds none); falling back to the CPU (`voicekit doctor` names the fix)"
        ])  # fmt: skip
    if chosen is None:
        notes.append(
            f"warning: an NVIDIA GPU is present but CUDA cannot start ({'; '.join(reasons)}); "
            "falling back to the CPU (`voicekit doctor` names the fix)"
        )
        return DeviceChoice("cpu", cpu_backend, notes)
    index = best_gpu_index(gpus)
    gpu = next(g for g in gpus if g.index == index)
    notes.insert(0, f"using cuda:{index} ({gpu.name}, {gpu.free_mb:,.0f} MB free) with {chosen}")
    return DeviceChoice(f"cuda:{index}", chosen, notes)


def _openvino_choice(device: str, wanted: Device) -> DeviceChoice:
    """``--backend openvino``: the CPU, whether ``--device`` is cpu or auto."""
    if not openvino_installed():
        raise DependencyError(
            "--backend openvino needs OpenVINO, which is not installed",
            hint="pip install 'voicekit[openvino]'",
        )
    if wanted.is_cuda:
        raise DeviceError(
            f"--device {device}: the openvino backend runs on the CPU only",
            hint="use --device cpu, or --backend ort or torch on the GPU",
        )
    return DeviceChoice("cpu", "openvino", [])


def _backend_notes(backend: str, chosen: str | None, reasons: list[str]) -> list[str]:
    """Say why ``auto`` took onnxruntime when the torch fast path was not possible."""
    if backend != "auto" or chosen != "ort":
        return []
    torch_why = next((r.partition(": ")[2] for r in reasons if r.startswith("torch")), "")
    if not torch_why:
        return [
            "note: torch is not installed; onnxruntime runs on CUDA "
            "(pip install 'voicekit[torch]' for the faster torch backend)"
        ]
    return [f"note: torch cannot use CUDA ({torch_why}); onnxruntime runs on CUDA instead"]


def best_gpu_index(gpus: list[GpuInfo] | None = None) -> int:
    """CUDA index of the GPU with the most free memory (0 when none is known)."""
    gpus = nvml_gpus() if gpus is None else gpus
    if not gpus:
        return 0
    return max(gpus, key=lambda g: g.free_mb).index


def gpu_info_for(device: str, gpus: list[GpuInfo] | None = None) -> GpuInfo | None:
    """NVML's facts about the GPU a resolved device (``cuda:N``) names; None on the CPU."""
    parsed = parse_device(device)
    if not parsed.is_cuda:
        return None
    index = parsed.index or 0
    gpus = nvml_gpus() if gpus is None else gpus
    return next((g for g in gpus if g.index == index), None)


def gpu_probe_for(device: str) -> Callable[[], tuple[float, float] | None] | None:
    """A probe of (used MB, total MB) on ``device`` for the memory monitor; None on the CPU."""
    return memory_probe(gpu_info_for(device))
