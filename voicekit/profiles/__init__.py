"""Profiles: TOML presets of settings, built-in and the user's own.

May import settings, system and errors (it chooses the device a run's profile is for).

Built-ins ship beside this file; user profiles live in ``$VOICEKIT_HOME/profiles``
(default: the platform's user config folder) and win over a built-in of the same
name. A profile is flat: ``key = value`` with the keys of :class:`SynthSettings`,
plus an optional ``description``.

Precedence: command-line flags > profile > defaults. Without ``--profile`` the
built-in profile for the device the run will use is taken (``cpu``, ``gpu-small``
or ``gpu-large``, by the GPU's memory); those only tune speed and memory, never
what the audio sounds like.
"""

from __future__ import annotations

import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import tomli_w

from voicekit.errors import InputError, OutputError, ProfileError, VoicekitError
from voicekit.settings import SETTING_FIELDS, SynthSettings
from voicekit.system import devices, fsutil
from voicekit.system.paths import config_home

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

BUILTIN_DIR = Path(__file__).parent
SMALL_GPU_MB = 8 * 1024  # up to this much GPU memory counts as gpu-small


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    builtin: bool
    values: dict[str, Any]
    description: str = ""
    overrides_builtin: bool = False
    """A user profile that hides the built-in of the same name."""


@dataclass(frozen=True)
class ProfileEntry:
    """A profile as ``profiles list`` shows it: loaded, or the reason it cannot be."""

    name: str
    path: Path
    builtin: bool
    profile: Profile | None
    error: str | None


def user_dir() -> Path:
    return config_home() / "profiles"


def _files() -> dict[str, tuple[Path, bool]]:
    found = {p.stem: (p, True) for p in sorted(BUILTIN_DIR.glob("*.toml"))}
    folder = user_dir()
    if folder.is_dir():
        found.update({p.stem: (p, False) for p in sorted(folder.glob("*.toml")) if p.is_file()})
    return found


def profile_entries() -> list[ProfileEntry]:
    """Every profile, with broken ones reported rather than raised."""
    entries = []
    for name, (path, builtin) in sorted(_files().items()):
        try:
            entries.append(ProfileEntry(name, path, builtin, load_profile(name), None))
        except ProfileError as exc:
            entries.append(ProfileEntry(name, path, builtin, None, exc.message))
    return entries


def load_profile(name: str) -> Profile:
    """A profile by name; unknown names and broken files raise ProfileError."""
    files = _files()
    if name not in files:
        known = ", ".join(sorted(files)) or "none"
        raise ProfileError(f"unknown profile '{name}'; known profiles: {known}")
    path, builtin = files[name]
    values, description = read_profile_file(path)
    overrides = not builtin and (BUILTIN_DIR / f"{name}.toml").is_file()
    return Profile(name, path, builtin, values, description, overrides)


def read_profile_file(path: Path) -> tuple[dict[str, Any], str]:
    """Parse and check one profile file: (values, description)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile {path} cannot be read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"profile {path} is not valid TOML: {exc}") from exc
    description = data.pop("description", "")
    if not isinstance(description, str):
        raise ProfileError(f"profile {path}: key 'description' must be text")
    values = {key: check_value(str(path), key, value) for key, value in data.items()}
    return values, description


def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(SynthSettings)


def _allowed(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [t for arg in get_args(annotation) for t in _allowed(arg)]
    if origin is Literal:
        return [("literal", get_args(annotation))]
    return [annotation]


def check_value(where: str, key: str, value: Any) -> Any:
    """``value`` for settings key ``key``, type-checked and range-checked.

    ``where`` names the file (or the profile being saved) in the error.
    """
    if key not in SETTING_FIELDS:
        raise ProfileError(
            f"profile {where}: unknown key '{key}'",
            hint=f"known keys: description, {', '.join(SETTING_FIELDS)}",
        )
    checked = _typed(where, key, value)
    try:  # each key on its own, so the error names the key as written in the file
        SynthSettings(**{key: checked}).validate()
    except InputError as exc:
        why = exc.message.removeprefix(f"{key.replace('_', '-')} = {checked!r} ")
        raise ProfileError(f"profile {where}: key '{key}' = {value!r} {why}") from exc
    return checked


def _typed(where: str, key: str, value: Any) -> Any:
    kinds = _allowed(_field_types()[key])
    for kind in kinds:
        if isinstance(kind, tuple) and not isinstance(value, bool) and value in kind[1]:
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
        ("one of " + ", ".join(map(str, k[1])))
        if isinstance(k, tuple)
        else {
            "int": "a whole number",
            "float": "a number",
            "bool": "true or false",
            "str": "text",
        }.get(getattr(k, "__name__", ""), str(k))
        for k in kinds
        if k is not type(None)
    )
    raise ProfileError(f"profile {where}: key '{key}' = {value!r} must be {expected}")


def save_profile(
    name: str, values: dict[str, Any], description: str = "", *, force: bool = True
) -> Path:
    """Write a user profile atomically; ``force=False`` refuses to replace one."""
    if not name or not all(c.isalnum() or c in "-_" for c in name) or name[0] in "-_":
        raise InputError(
            f"profile name '{name}' must start with a letter or digit and use "
            "letters, digits, - and _ only"
        )
    checked = {key: check_value(f"'{name}'", key, value) for key, value in values.items()}
    folder = user_dir()
    path = folder / f"{name}.toml"
    if path.exists() and not force:
        raise OutputError(f"profile '{name}' exists ({path}); use --force to replace it")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the profile folder {folder}: {exc}") from exc
    data: dict[str, Any] = {"description": description} if description else {}
    data.update(checked)
    try:
        fsutil.write_bytes(path, tomli_w.dumps(data).encode())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc}") from exc
    return path


def profile_for(choice: devices.DeviceChoice) -> str:
    """The built-in profile for a chosen device: ``cpu``, else by the GPU's memory."""
    gpu = devices.gpu_info_for(choice.device)
    if gpu is None:
        return "cpu"
    return "gpu-large" if gpu.total_mb > SMALL_GPU_MB else "gpu-small"


def device_profile(device: str = "auto", backend: str = "auto") -> str:
    """The built-in profile for where a run with ``--device``/``--backend`` will land
    (``cpu`` when that device cannot run at all: the run reports why)."""
    try:
        return profile_for(devices.choose_device(device, backend))
    except VoicekitError:
        return "cpu"


@dataclass(frozen=True)
class Resolved:
    """What a run will use: its settings, and the device chosen for them (once)."""

    settings: SynthSettings
    choice: devices.DeviceChoice


def resolve_settings(flags: dict[str, Any], profile: str | None) -> Resolved:
    """Defaults, then the profile (named, or the device's own), then the flags.

    The device is chosen here, once, and handed to the run: without ``--profile``
    the choice also picks the built-in profile. A device that cannot run is a
    DeviceError now, before any book is read.
    """
    asked = (str(flags.get("device") or "auto"), str(flags.get("backend") or "auto"))
    base: dict[str, Any] = {}
    choice: devices.DeviceChoice | None = None
    name = profile
    if name is None:
        choice = devices.choose_device(*asked)
        if profile_for(choice) in _files():
            name = profile_for(choice)
    if name is not None:
        base = dict(load_profile(name).values)
    settings = SynthSettings(**{**base, **flags}).validate()
    if choice is None or (settings.device, settings.backend) != asked:
        choice = devices.choose_device(settings.device, settings.backend)
    return Resolved(settings, choice)
