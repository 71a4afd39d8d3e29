"""Stand-ins for pynvml, torch and onnxruntime, so GPU cases run on machines without one.

Install them with ``monkeypatch.setitem(sys.modules, ...)`` (see the ``install_*``
helpers): code under test imports these modules lazily, so it finds the fakes.
"""

from __future__ import annotations

import functools
import importlib.machinery
import os
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

MB = 2**20


class FakeNVMLError(Exception):
    pass


@dataclass
class FakeGpu:
    name: str = "NVIDIA GeForce RTX 4090"
    total_mb: float = 24564
    used_mb: float = 1000
    uuid: str = "GPU-00000000-aaaa"
    util: int = 37
    mem_util: int = 12
    temp: int = 55
    power_mw: int | None = 120_000  # None: the board does not report power
    limit_mw: int = 450_000
    processes: list[tuple[int, int | None]] = field(default_factory=list)
    """(pid, used bytes or None)."""


def make_pynvml(
    gpus: list[FakeGpu] | None, *, driver: str = "550.54.15", cuda: int = 12040
) -> types.ModuleType:
    """A pynvml module over ``gpus``; ``None`` behaves like a machine without the driver."""
    nv = types.ModuleType("pynvml")
    nv.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    nv.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]
    state = {"open": 0, "inits": 0}

    def init() -> None:
        if gpus is None:
            raise FakeNVMLError("NVML Shared Library Not Found")
        state["open"] += 1
        state["inits"] += 1

    def shutdown() -> None:
        state["open"] -= 1

    def handle(i: int) -> FakeGpu:
        assert gpus is not None
        return gpus[i]

    def memory(g: FakeGpu) -> Any:
        return types.SimpleNamespace(
            total=int(g.total_mb * MB),
            used=int(g.used_mb * MB),
            free=int((g.total_mb - g.used_mb) * MB),
        )

    def power(g: FakeGpu) -> int:
        if g.power_mw is None:
            raise FakeNVMLError("Not Supported")
        return g.power_mw

    def procs(g: FakeGpu) -> list[Any]:
        return [types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in g.processes]

    nv.nvmlInit = init  # type: ignore[attr-defined]
    nv.nvmlShutdown = shutdown  # type: ignore[attr-defined]
    nv.nvmlDeviceGetCount = lambda: len(gpus or [])  # type: ignore[attr-defined]
    nv.nvmlDeviceGetHandleByIndex = handle  # type: ignore[attr-defined]
    nv.nvmlDeviceGetMemoryInfo = memory  # type: ignore[attr-defined]
    nv.nvmlDeviceGetName = lambda g: g.name.encode()  # type: ignore[attr-defined]
    nv.nvmlDeviceGetUUID = lambda g: g.uuid  # type: ignore[attr-defined]
    nv.nvmlDeviceGetUtilizationRates = lambda g: types.SimpleNamespace(  # type: ignore[attr-defined]
        gpu=g.util, memory=g.mem_util
    )
    nv.nvmlDeviceGetTemperature = lambda g, sensor: g.temp  # type: ignore[attr-defined]
    nv.nvmlDeviceGetPowerUsage = power  # type: ignore[attr-defined]
    nv.nvmlDeviceGetEnforcedPowerLimit = lambda g: g.limit_mw  # type: ignore[attr-defined]
    nv.nvmlDeviceGetComputeRunningProcesses = procs  # type: ignore[attr-defined]
    nv.nvmlDeviceGetGraphicsRunningProcesses = lambda g: []  # type: ignore[attr-defined]
    nv.nvmlSystemGetDriverVersion = lambda: driver  # type: ignore[attr-defined]
    nv.nvmlSystemGetCudaDriverVersion = lambda: cuda  # type: ignore[attr-defined]
    nv.state = state  # type: ignore[attr-defined]
    return nv


def install_pynvml(
    monkeypatch: pytest.MonkeyPatch, gpus: list[FakeGpu] | None, **kw: Any
) -> types.ModuleType:
    module = make_pynvml(gpus, **kw)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return module


def make_torch(
    *,
    cuda: str | None = "12.6",
    devices: list[tuple[str, tuple[int, int]]] = (),
    arch: list[str] | None = None,
    version: str = "2.6.0",
    cudnn: int | None = 90100,
) -> types.ModuleType:
    """A torch module: ``cuda`` None is a CPU build; ``devices`` are (name, capability)."""
    torch = types.ModuleType("torch")
    torch.__spec__ = importlib.machinery.ModuleSpec("torch", None)
    torch.__version__ = version  # type: ignore[attr-defined]
    torch.version = types.SimpleNamespace(cuda=cuda)  # type: ignore[attr-defined]
    available = cuda is not None and bool(devices)
    torch.cuda = types.SimpleNamespace(  # type: ignore[attr-defined]
        is_available=lambda: available,
        device_count=lambda: len(devices) if available else 0,
        get_device_capability=lambda i=0: devices[i][1],
        get_device_name=lambda i=0: devices[i][0],
        get_arch_list=lambda: list(arch if arch is not None else ["sm_80", "sm_86", "sm_90"]),
    )
    torch.backends = types.SimpleNamespace(  # type: ignore[attr-defined]
        cudnn=types.SimpleNamespace(version=lambda: cudnn)
    )
    return torch


def install_torch(monkeypatch: pytest.MonkeyPatch, **kw: Any) -> types.ModuleType:
    module = make_torch(**kw)
    monkeypatch.setitem(sys.modules, "torch", module)
    return module


LOADER_ERROR = (
    "2025-01-01 00:00:00.0 [E:onnxruntime:Default, provider_bridge_ort.cc:1862 "
    "TryGetProviderInfo_CUDA] /onnxruntime_src/onnxruntime/core/session/"
    "provider_bridge_ort.cc:1539 onnxruntime::Provider& onnxruntime::ProviderLibrary::Get() "
    "[ONNXRuntimeError] : 1 : FAIL : Failed to load library libonnxruntime_providers_cuda.so "
    "with error: {lib}: cannot open shared object file: No such file or directory\n"
    "2025-01-01 00:00:00.0 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:993 "
    "CreateExecutionProviderInstance] Failed to create CUDAExecutionProvider. Require cuDNN "
    "9.* and CUDA 12.*.\n"
)


def make_onnxruntime(
    *,
    providers: list[str],
    package: str = "onnxruntime-gpu",
    cuda_version: str = "12.8",
    version: str = "1.22.0",
    missing_lib: str | None = None,
) -> dict[str, types.ModuleType]:
    """onnxruntime and its build-info module; ``missing_lib`` makes CUDA sessions fall back
    to the CPU after writing the loader's error to fd 2, as the real library does."""
    ort = types.ModuleType("onnxruntime")
    ort.__version__ = version  # type: ignore[attr-defined]
    ort.get_available_providers = lambda: list(providers)  # type: ignore[attr-defined]
    ort.preloaded = []  # type: ignore[attr-defined]
    ort.preload_dlls = lambda: ort.preloaded.append(True)  # type: ignore[attr-defined]

    class SessionOptions:
        log_severity_level = 2

    class InferenceSession:
        def __init__(self, model: bytes, opts: Any = None, providers: Any = None) -> None:
            wanted = [p[0] if isinstance(p, tuple) else p for p in providers or []]
            if missing_lib and "CUDAExecutionProvider" in wanted:
                os.write(2, LOADER_ERROR.format(lib=missing_lib).encode())
                wanted = [p for p in wanted if p != "CUDAExecutionProvider"]
            self._providers = wanted

        def get_providers(self) -> list[str]:
            return self._providers

        def run(self, outputs: Any, feeds: Any) -> list[Any]:
            return [None]

    ort.SessionOptions = SessionOptions  # type: ignore[attr-defined]
    ort.InferenceSession = InferenceSession  # type: ignore[attr-defined]
    capi = types.ModuleType("onnxruntime.capi")
    info = types.ModuleType("onnxruntime.capi.build_and_package_info")
    info.package_name = package  # type: ignore[attr-defined]
    info.__version__ = version  # type: ignore[attr-defined]
    if package == "onnxruntime-gpu":
        info.cuda_version = cuda_version  # type: ignore[attr-defined]
    capi.build_and_package_info = info  # type: ignore[attr-defined]
    ort.capi = capi  # type: ignore[attr-defined]
    return {
        "onnxruntime": ort,
        "onnxruntime.capi": capi,
        "onnxruntime.capi.build_and_package_info": info,
    }


def install_onnxruntime(
    monkeypatch: pytest.MonkeyPatch, *, distributions: dict[str, str] | None = None, **kw: Any
) -> types.ModuleType:
    from voicekit.system import ortcuda

    modules = make_onnxruntime(**kw)
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    dists = (
        distributions
        if distributions is not None
        else {"onnxruntime-gpu": kw.get("version", "1.22.0")}
    )
    monkeypatch.setattr(ortcuda, "installed_ort_distributions", lambda: dict(dists))
    # A cache of its own, dropped with the fakes: a fake probe result must not outlive the test.
    fresh = functools.lru_cache(maxsize=8)(lambda device_id=0: ortcuda.probe_ort_cuda(device_id))
    monkeypatch.setattr(ortcuda, "probe_ort_cuda_cached", fresh)
    return modules["onnxruntime"]
