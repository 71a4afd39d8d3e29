"""What every doctor check shares: the Check record, the never-raise wrapper, machine facts."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import re
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from glob import glob
from pathlib import Path
from typing import Any, Literal

Status = Literal["ok", "warn", "fail"]


@dataclass
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


CheckFn = Callable[[], Check]


def guarded(name: str, critical: bool = False) -> Callable[[CheckFn], CheckFn]:
    """A check that cannot raise; ``critical`` ones fail when they break."""

    def wrap(fn: CheckFn) -> CheckFn:
        @functools.wraps(fn)
        def run() -> Check:
            try:
                return fn()
            except Exception as exc:  # a diagnostic tool must report, not crash
                return Check(
                    name,
                    "fail" if critical else "warn",
                    f"the check itself failed: {type(exc).__name__}: {exc}",
                )

        return run

    return wrap


# ---------------------------------------------------------------- shared facts
def nvidia_pci_devices() -> int:
    """NVIDIA display/3D controllers on the PCI bus (Linux; 0 where unknown)."""
    count = 0
    for vendor in glob("/sys/bus/pci/devices/*/vendor"):
        with contextlib.suppress(OSError):
            if Path(vendor).read_text().strip() == "0x10de":
                cls = (Path(vendor).parent / "class").read_text().strip()
                count += cls.startswith("0x03")
    return count


def torch_cuda_build() -> str | None:
    """The CUDA version torch was built for, without importing torch (None: CPU build)."""
    mod = sys.modules.get("torch")
    if mod is not None:
        return getattr(getattr(mod, "version", None), "cuda", None)
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    with contextlib.suppress(OSError):
        match = re.search(r"^cuda[^=]*=\s*'([\d.]+)'", path.read_text(), re.M)
        return match.group(1) if match else None
    return None


def nvml_driver() -> tuple[str | None, str | None, list[Any], str]:
    """(driver version, newest CUDA it supports, GPUs, why none) from NVML."""
    from voicekit.engine.gpuinfo import Nvml

    with Nvml() as nv:
        driver, cuda = nv.driver()
        return driver, cuda, nv.gpus(), nv.error


def major(version: str | None) -> int | None:
    with contextlib.suppress(ValueError, AttributeError):
        return int(str(version).split(".")[0])
    return None


def dist(name: str) -> str | None:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(name)
    return None
