"""doctor's GPU checks: onnxruntime's build and CUDA session, torch, CUDA graphs, the driver.

Every GPU problem is a warning with its fix: synthesis still works on the CPU.
"""

from __future__ import annotations

from typing import Any

from voicekit.diagnostics import checks as base
from voicekit.diagnostics.checks import Check, Status, guarded
from voicekit.system import devices

# Oldest Linux driver for each CUDA major version (NVIDIA's CUDA release notes).
MIN_DRIVER = {11: "450.80.02", 12: "525.60.13", 13: "580.65.06"}


@guarded("onnxruntime build", critical=True)
def check_onnxruntime_build() -> Check:
    # lazy: ortcuda (~5 ms) is for doctor only, and this module loads at every start-up
    from voicekit.system.ortcuda import SHADOW_FIX, ort_build

    b = ort_build()
    dists = ", ".join(f"{n} {v}" for n, v in b.distributions.items()) or "none"
    name = "onnxruntime build"
    gpu_here = base.gpu_facts().present
    if b.version is None:
        package = "onnxruntime-gpu" if "onnxruntime-gpu" in b.distributions else "onnxruntime"
        return Check(
            name,
            "fail",
            f"onnxruntime cannot be imported ({b.import_error}); installed: {dists}",
            f"pip install --force-reinstall --no-deps {package}",
        )
    providers = ", ".join(p.removesuffix("ExecutionProvider") for p in b.providers)
    built = f" built for CUDA {b.cuda_version}" if b.cuda_version else ""
    detail = (
        f"onnxruntime {b.version} from the {b.package or '?'} package{built}; "
        f"installed: {dists}; providers: {providers}"
    )
    if b.shadowed:
        if not gpu_here:  # the CPU build is what this machine can use anyway
            return Check(
                name,
                "ok",
                detail + " (onnxruntime-gpu is installed too but unused: no NVIDIA GPU here; "
                "a CPU install needs only onnxruntime)",
            )
        return Check(
            name,
            "warn",
            detail + " — the CPU build overwrote onnxruntime-gpu's "
            "files (piper-tts pulls in onnxruntime), so there is no CUDA provider",
            SHADOW_FIX,
        )
    if not b.has_cuda_provider and gpu_here:
        return Check(
            name,
            "warn",
            detail + " — no CUDA provider on a machine with an NVIDIA GPU",
            f"pip install 'voicekit[gpu]' && {SHADOW_FIX}",
        )
    return Check(name, "ok", detail)


@guarded("onnxruntime CUDA")
def check_onnxruntime_cuda() -> Check:
    # lazy: ortcuda (~5 ms) is for doctor only, and this module loads at every start-up
    from voicekit.system.ortcuda import cuda_library_fix, ort_build, probe_ort_cuda

    name = "onnxruntime CUDA"
    b = ort_build()
    gpu = base.gpu_facts()
    if not b.has_cuda_provider:
        status: Status = "warn" if gpu.present else "ok"
        return Check(
            name,
            status,
            "not tried: this onnxruntime has no CUDA provider"
            + ("" if gpu.present else " (and there is no NVIDIA GPU)"),
            "see 'onnxruntime build'" if gpu.present else None,
        )
    if not gpu.driver_sees_one:
        return Check(name, "ok", "not tried: no NVIDIA GPU or driver")
    probe = probe_ort_cuda(0)
    if probe.ok:
        return Check(
            name,
            "ok",
            f"a CUDA session was created and ran on cuda:0 "
            f"(providers: {', '.join(probe.providers)})",
        )
    what = f"missing {', '.join(probe.missing)}" if probe.missing else probe.error
    return Check(
        name,
        "warn",
        f"CUDA session failed, onnxruntime would use the CPU: {what}"
        + (f" [{probe.error}]" if probe.missing and probe.error else ""),
        cuda_library_fix(probe.missing, b.cuda_version),
    )


def _cudnn_text(version: int | None) -> str:
    if not version:
        return "none"
    if version >= 90000:  # cuDNN 9 encodes major*10000 + minor*100 + patch
        return f"{version // 10000}.{version // 100 % 100}.{version % 100}"
    return f"{version // 1000}.{version // 100 % 10}.{version % 100}"


@guarded("torch")
def check_torch() -> Check:
    gpu_here = base.gpu_facts().present
    if not devices.torch_installed():
        return Check(
            "torch",
            "warn" if gpu_here else "ok",
            "not installed (optional: the torch backend is the GPU fast path)",
            "pip install 'voicekit[torch]'" if gpu_here else None,
        )
    import torch

    head = f"torch {torch.__version__}"
    if torch.version.cuda is None:
        detail = f"{head}: CPU-only build"
        if gpu_here:
            return Check(
                "torch",
                "warn",
                detail + " on a machine with an NVIDIA GPU",
                "install a CUDA build of torch matching the driver, e.g. "
                "pip install torch --index-url https://download.pytorch.org/whl/cu126",
            )
        return Check("torch", "ok", detail)
    head += f" (CUDA {torch.version.cuda}, cuDNN {_cudnn_text(torch.backends.cudnn.version())})"
    try:
        available = bool(torch.cuda.is_available())
    except Exception as exc:
        available, head = False, f"{head}; CUDA init failed: {exc}"
    if not available:
        return Check(
            "torch",
            "warn" if gpu_here else "ok",
            f"{head}: CUDA not available",
            f"check 'NVIDIA driver' below: the driver must support CUDA {torch.version.cuda}"
            if gpu_here
            else None,
        )
    count = torch.cuda.device_count()
    parts = []
    for i in range(count):
        cap = tuple(torch.cuda.get_device_capability(i))
        parts.append(f"cuda:{i} {torch.cuda.get_device_name(i)} (sm_{cap[0]}{cap[1]})")
    detail = f"{head}: " + "; ".join(parts)
    bad = devices.torch_gpus_without_kernels(torch, range(count))
    if bad:
        arch = ", ".join(torch.cuda.get_arch_list())
        return Check(
            "torch",
            "warn",
            f"{detail} — no kernels for {', '.join(f'cuda:{i}' for i in bad)} "
            f"in this build ({arch})",
            "install a newer torch built for this GPU",
        )
    return Check("torch", "ok", detail)


def cuda_graph_capture(torch: Any, index: int = 0) -> None:
    """Capture and replay a one-op CUDA graph; raises when the GPU or build cannot."""
    device = torch.device(f"cuda:{index}")
    x = torch.ones(16, device=device)
    stream = torch.cuda.Stream(device=device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):
        y = x * 2  # warm-up outside the capture, as PyTorch's docs require
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y = x * 2
    x.fill_(3.0)
    graph.replay()
    torch.cuda.synchronize(device)
    if float(y[0].item()) != 6.0:
        raise RuntimeError(f"replay gave {float(y[0].item())}, expected 6.0")


@guarded("torch CUDA graphs")
def check_torch_cuda_graphs() -> Check:
    name = "torch CUDA graphs"
    if not devices.torch_installed() or not base.gpu_facts().driver_sees_one:
        return Check(name, "ok", "not tried: needs torch with CUDA and an NVIDIA GPU")
    import torch

    if torch.version.cuda is None or not torch.cuda.is_available():
        return Check(name, "ok", "not tried: torch cannot use CUDA (see 'torch')")
    try:
        cuda_graph_capture(torch, 0)
    except Exception as exc:
        return Check(
            name,
            "warn",
            f"capture failed on cuda:0: {type(exc).__name__}: {exc}",
            "run with --no-cuda-graphs (slower, same audio)",
        )
    return Check(name, "ok", "captured and replayed a graph on cuda:0")


@guarded("NVIDIA driver")
def check_driver() -> Check:
    # lazy: ortcuda (~5 ms) is for doctor only, and this module loads at every start-up
    from voicekit.system.ortcuda import ort_build

    name = "NVIDIA driver"
    driver, cuda, gpus, error = base.nvml_driver()
    if not gpus:
        pci = base.gpu_facts().pci_gpus
        if pci:
            return Check(
                name,
                "warn",
                f"{pci} NVIDIA GPU(s) on the PCI bus but no working "
                f"driver ({error or 'NVML reports no GPU'})",
                f"install the NVIDIA driver (>= {MIN_DRIVER[12]} for CUDA 12) and reboot",
            )
        return Check(name, "ok", f"no NVIDIA GPU on this machine ({error or 'NVML reports none'})")
    listed = "; ".join(f"{g.name} {g.memory_total_mb / 1024:.0f} GB" for g in gpus)
    detail = f"driver {driver or '?'} (CUDA {cuda or '?'}): {listed}"
    builds = {"torch": base.torch_cuda_build(), "onnxruntime": ort_build().cuda_version}
    too_old = [
        f"{who} needs CUDA {v}"
        for who, v in builds.items()
        if v and cuda and (base.major(v) or 0) > (base.major(cuda) or 0)
    ]
    if too_old:
        need = max(base.major(v) or 0 for v in builds.values() if v)
        return Check(
            name,
            "warn",
            f"{detail} — too old: {', '.join(too_old)}",
            f"upgrade the NVIDIA driver to >= {MIN_DRIVER.get(need, 'a newer one')} "
            f"(CUDA {need}), or install builds for CUDA {base.major(cuda)}",
        )
    notes = [f"{who} built for CUDA {v}" for who, v in builds.items() if v]
    return Check(name, "ok", detail + (f"; supports {', '.join(notes)}" if notes else ""))
