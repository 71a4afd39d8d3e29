"""Where the cluster is: the ``--cluster`` address, and joining it (``ray.init``)."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from voicekit.errors import DependencyError, DeviceError, InputError

ENV = "VOICEKIT_CLUSTER"
"""The address when ``--cluster`` (or a profile's ``cluster``) gives none."""
LOCAL_OBJECT_STORE_MB = 256
"""``local`` keeps Ray's shared memory small: books travel through it only without a
shared filesystem, one finished file at a time."""


def cluster_address(flag: str | None, profile: str | None = None) -> str | None:
    """The address to use: the flag, else ``$VOICEKIT_CLUSTER``, else the profile's; None: off."""
    for value in (flag, os.environ.get(ENV), profile):
        if value is not None and value.strip():
            return check_address(value.strip())
    return None


def check_address(address: str) -> str:
    """``local``, ``auto`` or ``ray://host:port``; anything else is refused up front."""
    if address in ("local", "auto"):
        return address
    if address.startswith("ray://"):
        host, _, port = address[len("ray://") :].rpartition(":")
        if host and port.isdigit():
            return address
    raise InputError(
        f"--cluster {address!r} is not local, auto or ray://host:port",
        hint="local starts Ray on this machine; auto joins the cluster `ray start` made",
    )


def import_ray() -> ModuleType:
    """Ray, or the one-line error that names the extra (exit 6)."""
    try:
        import ray
    except ImportError as exc:
        raise DependencyError(
            "--cluster needs Ray, which is not installed",
            hint="pip install 'voicekit[cluster]'",
        ) from exc
    return ray


def connect(address: str, *, cpus: int | None = None) -> bool:
    """Join (or, for ``local``, start) the cluster; True when this call started Ray.

    A process that has already called ``ray.init`` (a test's cluster) is left as it is.
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address == "local":
        kwargs.update(
            # "local" itself: with no address Ray joins any instance it finds on the machine
            # (another run's, a `ray start`); this run's Ray must be its own
            address="local",
            num_cpus=cpus or os.cpu_count() or 1,
            include_dashboard=False,
            object_store_memory=LOCAL_OBJECT_STORE_MB * 2**20,
        )
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except ConnectionError as exc:  # nothing at that address
        raise DeviceError(f"cannot reach the Ray cluster at {address}: {exc}") from exc
    return True


def disconnect(started: bool) -> None:
    if started:
        import_ray().shutdown()
