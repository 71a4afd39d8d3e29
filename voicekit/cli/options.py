"""The settings flags, defined once: ``synth`` and ``profiles save`` both take them.

Every flag defaults to None so "not given" is known and a profile can fill it
(precedence: flags > profile > defaults).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from voicekit.settings import SETTING_FIELDS, field_doc

# One flag per settings field, by help panel, in the order --help lists them.
_FLAGS: dict[str, tuple[tuple[str, type], ...]] = {
    "Voice": (
        ("voice", str), ("speaker", int), ("length_scale", float), ("noise_scale", float),
        ("noise_w", float), ("seed", int), ("volume", float),
    ),
    "Text and pauses": (
        ("bucket_size", int), ("max_bucket_phonemes", int), ("max_sentence_phonemes", int),
        ("speak_titles", bool), ("sentence_silence", float), ("paragraph_silence", float),
        ("chapter_silence", float),
    ),
    "Reading": (
        ("heading_numbers", str), ("urls", str), ("code", str), ("code_note", str),
        ("tables", str),
    ),
    "Engine": (
        ("backend", str), ("device", str), ("threads", int), ("batch_size", int),
        ("chunk_frames", int), ("overlap_frames", int), ("precision", str),
        ("cuda_graphs", bool), ("compile", bool),
    ),
    "Output": (
        ("format", str), ("bitrate", str), ("loudness", float), ("true_peak", float),
        ("sample_rate", int), ("room_tone_head", float), ("room_tone_tail", float),
        ("room_tone_level", float), ("split_chapters", bool), ("credits", bool),
    ),
}  # fmt: skip
_SHORT = {"format": "-f"}


def _option(name: str, kind: type, panel: str) -> Any:
    flag = f"--{name.replace('_', '-')}"
    if kind is bool:  # both ways, so a flag can undo what a profile turned on
        flags: tuple[str, ...] = (f"{flag}/--no-{flag[2:]}",)
    else:
        flags = (flag, _SHORT[name]) if name in _SHORT else (flag,)
    option = typer.Option(*flags, help=field_doc(name), rich_help_panel=panel, show_default=False)
    return Annotated[kind | None, option]


SETTINGS_OPTIONS: dict[str, Any] = {
    name: _option(name, kind, panel) for panel, flags in _FLAGS.items() for name, kind in flags
}
Bitrate = SETTINGS_OPTIONS["bitrate"]
"""``convert`` takes this one flag too."""

F = TypeVar("F", bound=Callable[..., Any])


def with_settings_flags(func: F) -> F:
    """Give a command every settings flag; they arrive in its ``**flags``.

    Typer reads a command's parameters from its signature, so the flags are added
    to the signature here rather than written out in each command.
    """
    signature = inspect.signature(func, eval_str=True)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                                 annotation=alias) for name, alias in SETTINGS_OPTIONS.items()]
    func.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    func.__annotations__ = {**func.__annotations__, **SETTINGS_OPTIONS}
    return func


def settings_flags(values: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line (None means not given)."""
    return {k: v for k, v in values.items() if k in SETTING_FIELDS and v is not None}
