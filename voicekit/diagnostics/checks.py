"""What every doctor check shares: the Check record, the never-raise wrapper, machine facts."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any, Literal

from voicekit.system import devices
from voicekit.system.devices import nvidia_pci_devices
from voicekit.system.nvml import Nvml, nvml_all_gpus

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
def torch_cuda_build() -> str | None:
    """The CUDA version torch was built for (None: CPU build, or no usable torch).

    Imports torch, but in a doctor run check_torch already has.
    """
    if not devices.torch_installed():
        return None
    try:
        import torch
    except Exception:  # a broken install: check_torch reports it
        return None
    return torch.version.cuda


def nvml_driver() -> tuple[str | None, str | None, list[Any], str]:
    """(driver version, newest CUDA it supports, GPUs, why none): the full NVML snapshot."""
    with Nvml() as nv:
        driver, cuda = nv.driver()
        return driver, cuda, nv.gpus(), nv.error


@dataclass(frozen=True)
class GpuFacts:
    """Is there an NVIDIA GPU? Asked by most checks, answered once per doctor run."""

    nvml_gpus: int
    """GPUs the driver reports (0 without a driver)."""
    pci_gpus: int
    """NVIDIA GPUs on the PCI bus, driver or not (Linux; 0 where unknown)."""

    @property
    def driver_sees_one(self) -> bool:
        return self.nvml_gpus > 0

    @property
    def present(self) -> bool:
        """The hardware is there, working driver or not: GPU advice applies."""
        return self.nvml_gpus > 0 or self.pci_gpus > 0


_run_cache: dict[str, GpuFacts] | None = None
"""Facts read during the current :func:`one_look` block; None outside one (read fresh)."""


def gpu_facts() -> GpuFacts:
    if _run_cache is not None and "gpu" in _run_cache:
        return _run_cache["gpu"]
    facts = GpuFacts(len(nvml_all_gpus()), nvidia_pci_devices())
    if _run_cache is not None:
        _run_cache["gpu"] = facts
    return facts


@contextlib.contextmanager
def one_look() -> Iterator[None]:
    """Within the block, :func:`gpu_facts` reads the machine once and reuses the answer."""
    global _run_cache
    _run_cache = {}
    try:
        yield
    finally:
        _run_cache = None


def major(version: str | None) -> int | None:
    with contextlib.suppress(ValueError, AttributeError):
        return int(str(version).split(".")[0])
    return None


def dist(name: str) -> str | None:
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        return importlib.metadata.version(name)
    return None
