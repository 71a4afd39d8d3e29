"""Does onnxruntime really run on CUDA here? Build, probe, and name what is missing.

onnxruntime-gpu lists ``CUDAExecutionProvider`` even when the CUDA libraries it
needs (cuBLAS, cuDNN, ...) cannot be loaded: the session then quietly falls back
to the CPU, and the loader's message (``libcublasLt.so.12: cannot open shared
object file``) goes through onnxruntime's C++ logger straight to file
descriptor 2, not to Python. So the probe builds a one-node model, creates a
CUDA session with fd 2 captured, and reads both the captured text and any
exception for library names.

Shared by ``devices`` (may ``auto`` use CUDA?) and ``doctor`` (what to fix?).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

# Distributions that install the ``onnxruntime`` import package; more than one
# installed means they overwrite each other's files and the last one wins.
ORT_DISTRIBUTIONS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-silicon",
    "onnxruntime-training",
)

_LIB_RE = re.compile(r"((?:lib)?[A-Za-z][\w+-]*(?:\.so(?:\.\d+)*|\.dll|\.dylib))")
_MISSING_RE = re.compile(
    r"((?:lib)?[A-Za-z][\w+-]*(?:\.so(?:\.\d+)*|\.dll))\s*:\s*cannot open shared object file"
)


@dataclass(frozen=True)
class OrtBuild:
    """Which onnxruntime is importable and which distributions claim it."""

    version: str | None
    """``onnxruntime.__version__``; None when it cannot be imported."""
    package: str | None
    """The distribution whose files won (``build_and_package_info.package_name``)."""
    cuda_version: str | None
    """CUDA version the imported build was compiled for (GPU builds only)."""
    providers: list[str]
    distributions: dict[str, str]
    """Installed distributions providing ``onnxruntime``: name -> version."""
    import_error: str = ""

    @property
    def has_cuda_provider(self) -> bool:
        return "CUDAExecutionProvider" in self.providers

    @property
    def shadowed(self) -> bool:
        """onnxruntime-gpu is installed but another build overwrote its files."""
        return (
            "onnxruntime-gpu" in self.distributions
            and len(self.distributions) > 1
            and not self.has_cuda_provider
        )


def installed_ort_distributions() -> dict[str, str]:
    found = {}
    for name in ORT_DISTRIBUTIONS:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


def ort_build() -> OrtBuild:
    dists = installed_ort_distributions()
    try:
        import onnxruntime as ort
    except Exception as exc:  # ImportError, or a broken native library (OSError)
        return OrtBuild(None, None, None, [], dists, import_error=f"{type(exc).__name__}: {exc}")
    info: Any = None
    with contextlib.suppress(Exception):
        from onnxruntime.capi import build_and_package_info as info
    package = getattr(info, "package_name", None)
    cuda = getattr(info, "cuda_version", None) or None
    try:
        providers = list(ort.get_available_providers())
    except Exception:
        providers = []
    return OrtBuild(getattr(ort, "__version__", None), package, cuda, providers, dists)


# pip cannot remove another package's files, and it installs onnxruntime-gpu before
# onnxruntime (same depth in the dependency graph, then by name), so after
# `pip install voicekit[gpu]` the CPU build that piper-tts requires has overwritten
# the GPU build. Reinstalling the GPU build over it, without touching anything else,
# is the one step that fixes it; README.md gives these exact words.
SHADOW_FIX = "pip install --force-reinstall --no-deps onnxruntime-gpu"


# ------------------------------------------------------------------ fd 2 capture
@dataclass
class Captured:
    text: str = ""


@contextlib.contextmanager
def capture_fd2() -> Iterator[Captured]:
    """Capture what native code writes to file descriptor 2 while the block runs."""
    result = Captured()
    with contextlib.suppress(Exception):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 at all (rare embedding): nothing to capture
        yield result
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield result
        finally:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            result.text = tmp.read().decode("utf-8", "replace")


# ------------------------------------------------------------------ the probe
@dataclass(frozen=True)
class OrtCudaProbe:
    ok: bool
    """A CUDA session was created, kept the CUDA provider, and ran."""
    providers: list[str] = field(default_factory=list)
    """The providers the probe session ended up with."""
    error: str = ""
    """The exception and/or onnxruntime's log lines, trimmed."""
    missing: list[str] = field(default_factory=list)
    """Shared libraries the loader could not open (``libcudnn.so.9``, ...)."""


def missing_libraries(text: str) -> list[str]:
    """Library names the dynamic loader said it could not open, in order, no repeats."""
    names = _MISSING_RE.findall(text)
    if not names and "error 126" in text:  # Windows LoadLibrary: DLL names appear nearby
        names = [n for n in _LIB_RE.findall(text) if n.lower().endswith(".dll")]
    # The provider library itself is the victim, not the cause, unless it is the only name.
    causes = [n for n in names if "onnxruntime_providers" not in n]
    return list(dict.fromkeys(causes or names))


def tiny_model_bytes() -> bytes:
    """A Conv followed by a MatMul: touches cuDNN and cuBLAS, as the voice does."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 2, 3), np.float32), "w")
    proj = numpy_helper.from_array(np.ones((8, 8), np.float32), "p")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1]),
            helper.make_node("MatMul", ["c", "p"], ["y"]),
        ],
        "voicekit-probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [weight, proj],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by every onnxruntime voicekit supports
    return bytes(model.SerializeToString())


def preload_cuda_libraries() -> str:
    """``onnxruntime.preload_dlls()`` (1.21+): load CUDA/cuDNN from the nvidia-* wheels.

    Returns what it printed: it writes its warnings with ``print``, which must not
    reach stdout (``--json`` output lives there). Harmless when the wheels are absent.
    """
    try:
        import onnxruntime as ort
    except Exception:
        return ""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return ""
    printed = io.StringIO()
    with capture_fd2() as out, contextlib.redirect_stdout(printed):
        try:
            preload()
        except Exception as exc:  # a bad directory or a loader error: the probe will tell
            print(f"preload_dlls: {exc}")
    return (printed.getvalue() + out.text).strip()


def probe_ort_cuda(device_id: int = 0) -> OrtCudaProbe:
    """Create and run a CUDA session on a tiny model; report what happened."""
    try:
        import numpy as np
        import onnxruntime as ort
    except Exception as exc:
        return OrtCudaProbe(False, error=f"onnxruntime cannot be imported: {exc}")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return OrtCudaProbe(False, error="this onnxruntime build has no CUDA execution provider")
    preloaded = preload_cuda_libraries()
    providers: list[str] = []
    error = ""
    with capture_fd2() as log:
        try:
            opts = ort.SessionOptions()
            opts.log_severity_level = 2  # keep the loader's warnings: they name the library
            session = ort.InferenceSession(
                tiny_model_bytes(),
                opts,
                providers=[
                    ("CUDAExecutionProvider", {"device_id": device_id}),
                    "CPUExecutionProvider",
                ],
            )
            providers = list(session.get_providers())
            if "CUDAExecutionProvider" in providers:
                session.run(None, {"x": np.ones((1, 2, 8), np.float32)})
        except Exception as exc:  # onnxruntime raises its own types (Fail, RuntimeException)
            error = f"{type(exc).__name__}: {exc}"
    text = "\n".join(t for t in (error, log.text, preloaded) if t)
    ok = not error and "CUDAExecutionProvider" in providers
    if not ok and not error:
        error = "the CUDA session fell back to the CPU"
    return OrtCudaProbe(
        ok, providers, _trim(text if not ok else ""), missing_libraries(text) if not ok else []
    )


@functools.lru_cache(maxsize=8)
def probe_ort_cuda_cached(device_id: int = 0) -> OrtCudaProbe:
    """One probe per process and device: loading the CUDA libraries takes a second or two."""
    return probe_ort_cuda(device_id)


def _trim(text: str, limit: int = 600) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    joined = " | ".join(dict.fromkeys(lines))
    return joined if len(joined) <= limit else joined[: limit - 3] + "..."


def cuda_library_fix(missing: list[str], build_cuda: str | None) -> str:
    """What to do about the libraries onnxruntime could not load."""
    cuda_major = (build_cuda or "12").split(".")[0]
    steps = []
    names = " ".join(missing).lower()
    if "libcuda.so" in names or "nvcuda" in names:
        return "install the NVIDIA driver (libcuda comes with it, not with pip)"
    majors = {
        m.group(1) for m in re.finditer(r"(?:cublas\w*|cudart|cufft|curand)\w*\.so\.(\d+)", names)
    }
    if majors and cuda_major not in majors:
        steps.append(
            f"this onnxruntime-gpu is built for CUDA {build_cuda}; the libraries must "
            f"be CUDA {cuda_major}.x"
        )
    steps.append("pip install 'onnxruntime-gpu[cuda,cudnn]' (the CUDA and cuDNN wheels)")
    steps.append("onnxruntime.preload_dlls() then loads them before the first CUDA session")
    if "cudnn" in names:
        steps.append(f"or install cuDNN 9 for CUDA {cuda_major} and put it on LD_LIBRARY_PATH")
    elif missing:
        steps.append(
            f"or install the CUDA {cuda_major} toolkit libraries and put them on LD_LIBRARY_PATH"
        )
    return "; ".join(steps)
