"""Profiles: TOML presets of settings, built-in and the user's own.

Built-ins ship beside this file; user profiles live in ``$VOICEKIT_HOME/profiles``
and win over a built-in of the same name. A profile is flat: ``key = value`` with
the keys of :class:`SynthSettings`, plus an optional ``description``.
Precedence: command-line flags > profile > defaults. Without ``--profile`` the
built-in profile for the detected device is used (``cpu``, ``gpu-small`` or
``gpu-large``); those only tune speed and memory, never what the audio sounds like.
"""

from __future__ import annotations

import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import tomli_w

from voicekit.engine.paths import config_home
from voicekit.engine.settings import SETTING_FIELDS, SynthSettings
from voicekit.errors import InputError, ProfileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).parent
DEVICE_PROFILES = ("cpu", "gpu-small", "gpu-large")
SMALL_GPU_MB = 8 * 1024  # up to this much GPU memory counts as gpu-small


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    builtin: bool
    values: dict[str, Any]
    description: str = ""


def user_dir() -> Path:
    return config_home() / "profiles"


def _files() -> dict[str, tuple[Path, bool]]:
    found = {p.stem: (p, True) for p in sorted(BUILTIN_DIR.glob("*.toml"))}
    folder = user_dir()
    if folder.is_dir():
        found.update({p.stem: (p, False) for p in sorted(folder.glob("*.toml"))})
    return found


def list_profiles() -> list[Profile]:
    return [load_profile(name) for name in sorted(_files())]


def load_profile(name: str) -> Profile:
    files = _files()
    if name not in files:
        known = ", ".join(sorted(files)) or "none"
        raise ProfileError(f"unknown profile '{name}'; known profiles: {known}")
    path, builtin = files[name]
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {path} is not valid TOML: {exc}") from exc
    description = data.pop("description", "")
    if not isinstance(description, str):
        raise ProfileError(f"profile {path}: key 'description' must be text")
    values = {}
    for key, value in data.items():
        values[key] = _check_value(path, key, value)
    try:
        SynthSettings(**values).validate()
    except InputError as exc:
        raise ProfileError(f"profile {path}: {exc.message}") from exc
    return Profile(name, path, builtin, values, description)


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(SynthSettings)


def _allowed(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _allowed(arg)]
    if origin is Literal:
        return [("literal", get_args(annotation))]
    return [annotation]


def _check_value(path: Path, key: str, value: Any) -> Any:
    if key not in SETTING_FIELDS:
        raise ProfileError(f"profile {path}: unknown key '{key}'",
                           hint=f"known keys: {', '.join(SETTING_FIELDS)}")
    for kind in _allowed(_field_types()[key]):
        if isinstance(kind, tuple) and value in kind[1]:
            return value
        if kind is bool and isinstance(value, bool):
            return value
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    expected = " or ".join(
        ("one of " + ", ".join(map(str, k[1]))) if isinstance(k, tuple)
        else getattr(k, "__name__", str(k)) for k in _allowed(_field_types()[key])
        if k is not type(None))
    raise ProfileError(f"profile {path}: key '{key}' = {value!r} must be {expected}")


def save_profile(name: str, values: dict[str, Any], description: str = "") -> Path:
    """Write a user profile (atomically); refuses names that are not plain words."""
    if not name or not all(c.isalnum() or c in "-_" for c in name):
        raise InputError(f"profile name '{name}' must use letters, digits, - and _ only")
    for key, value in values.items():
        _check_value(Path(f"<{name}>"), key, value)
    try:
        SynthSettings(**values).validate()
    except InputError as exc:
        raise ProfileError(f"profile {name}: {exc.message}") from exc
    folder = user_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    data: dict[str, Any] = {"description": description} if description else {}
    data.update(values)
    from voicekit.engine.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, tomli_w.dumps(data).encode())
    return path


def device_profile() -> str:
    """The built-in profile for this machine's best GPU (by memory), or ``cpu``."""
    from voicekit.engine.devices import nvml_gpus

    gpus = nvml_gpus()
    if not gpus:
        return "cpu"
    return "gpu-large" if max(g.total_mb for g in gpus) > SMALL_GPU_MB else "gpu-small"


def resolve_settings(flags: dict[str, Any], profile: str | None) -> SynthSettings:
    """Defaults, then the profile (named, or the device's own), then the flags."""
    base: dict[str, Any] = {}
    name = profile
    if name is None:
        candidate = device_profile()
        if candidate in _files():
            name = candidate
    if name is not None:
        base = dict(load_profile(name).values)
    settings = SynthSettings(**{**base, **flags})
    return settings.validate()
