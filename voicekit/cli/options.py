"""The settings flags, defined once: ``synth`` and ``profiles save`` both take them.

Every flag defaults to None so "not given" is known and a profile can fill it
(precedence: flags > profile > defaults).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args, get_type_hints

import typer
from rich.markup import escape
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from voicekit.formats.encoders import DEFAULT_BITRATES
from voicekit.settings import FORMATS, SETTING_FIELDS, SynthSettings, field_doc

if TYPE_CHECKING:
    from typer import _click as click

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
        ("tables", str), ("lexicon", str),
    ),
    "Engine": (
        ("backend", str), ("device", str), ("threads", int), ("workers", int),
        ("cluster", str), ("batch_size", int), ("chunk_frames", int), ("overlap_frames", int),
        ("precision", str),
        ("cuda_graphs", bool), ("compile", bool),
    ),
    "Output": (
        ("format", str), ("bitrate", str), ("loudness", float), ("true_peak", float),
        ("sample_rate", int), ("room_tone_head", float), ("room_tone_tail", float),
        ("room_tone_level", float), ("split_chapters", bool), ("credits", bool),
    ),
}  # fmt: skip
_SHORT = {"format": "-f"}

# What each value is, for --help: the metavar and the unit its default is given in.
# A field not named here takes its kind's metavar (_KIND_METAVARS) and no unit.
_METAVARS = {
    "voice": "FILE", "speaker": "ID", "seed": "N", "volume": "GAIN",
    "length_scale": "FACTOR", "noise_scale": "FACTOR", "noise_w": "FACTOR",
    "bucket_size": "N", "max_bucket_phonemes": "N", "max_sentence_phonemes": "N",
    "sentence_silence": "SECONDS", "paragraph_silence": "SECONDS",
    "chapter_silence": "SECONDS", "code_note": "TEXT", "device": "auto|cpu|cuda|cuda:N",
    "threads": "N", "workers": "N", "cluster": "local|auto|ray://HOST:PORT",
    "batch_size": "N", "chunk_frames": "FRAMES", "overlap_frames": "FRAMES",
    "format": "|".join(FORMATS), "bitrate": "KBPS",
}  # fmt: skip
_UNITS = {
    "bucket_size": "sentences", "max_bucket_phonemes": "phonemes",
    "max_sentence_phonemes": "phonemes", "sentence_silence": "s", "paragraph_silence": "s",
    "chapter_silence": "s", "chunk_frames": "latent frames", "overlap_frames": "latent frames",
}  # fmt: skip
_KIND_METAVARS = {int: "N", float: "NUMBER", str: "TEXT"}
_DEFAULT_TEXT = {  # where the value is not one setting but the format's
    "bitrate": ", ".join(f"{rate} for {fmt}" for fmt, rate in DEFAULT_BITRATES.items())
    + " (kb/s)",
}
_HINTS = get_type_hints(SynthSettings)


def with_default(help_text: str, default: str) -> str:
    """``help_text`` ending in typer's ``[default: ...]``, for a default typer cannot show
    (None meaning "not given") or would show without its unit (240.0 for 240 s)."""
    return f"{help_text} {escape(f'[default: {default}]')}"


def metavar_of(name: str, kind: type) -> str:
    """The --help metavar of a settings field: its choices, or what the value is."""
    choices = get_args(_HINTS[name])
    if choices and all(isinstance(c, str) for c in choices):  # a Literal: list the choices
        return "|".join(choices)
    return _METAVARS.get(name) or _KIND_METAVARS.get(kind, "VALUE")


def default_text(name: str) -> str | None:
    """The default of a settings field as --help shows it, with its unit; None when unset."""
    if name in _DEFAULT_TEXT:
        return _DEFAULT_TEXT[name]
    value = SETTING_FIELDS[name].default
    if value is None:
        return None  # the help text says what "unset" means
    if isinstance(value, bool):
        return "on" if value else "off"
    unit = _UNITS.get(name)
    return f"{value} {unit}" if unit else str(value)


def _option(name: str, kind: type, panel: str) -> Any:
    flag = f"--{name.replace('_', '-')}"
    if kind is bool:  # both ways, so a flag can undo what a profile turned on
        flags: tuple[str, ...] = (f"{flag}/--no-{flag[2:]}",)
    else:
        flags = (flag, _SHORT[name]) if name in _SHORT else (flag,)
    # The value is None when not given (a profile may fill it), so typer cannot show the
    # default: it comes from the dataclass, in typer's words, escaped from Rich markup.
    default = default_text(name)
    doc = field_doc(name).replace("``", "")
    option = typer.Option(
        *flags,
        help=with_default(doc, default) if default is not None else doc,
        rich_help_panel=panel,
        metavar="" if kind is bool else metavar_of(name, kind),
        show_default=False,
    )
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


# ------------------------------------------------------------------ --help without Python types
class _Argument(TyperArgument):
    """An argument that --help names by its metavar alone, as click did.

    typer 0.29 prints an argument's Python type (``<list[str]>``) beside it and wraps
    the usage line's required arguments in braces (``{inputs}...``), metavar or not.
    """

    def display_type_rich(self, ctx: click.Context) -> str | None:
        return None  # the metavar in the name column says it

    def _usage_display_name(self) -> str:
        name = self.display_name_raw
        return name if self.required else f"[{name}]"


def _plain(param: click.Parameter) -> None:
    """Give ``param`` a metavar where typer would show a Python type instead."""
    if isinstance(param, TyperArgument) and not isinstance(param, _Argument):
        param.__class__ = _Argument  # same fields; only how help names it differs
        if param.metavar is None:
            param.metavar = (param.name or "").upper() + ("..." if param.nargs != 1 else "")
    elif isinstance(param, TyperOption) and param.metavar is None:
        if param.is_flag:  # --help, --json, --force...: a switch takes no value
            param.metavar = ""
        else:
            kind = param.type_descriptor.annotation
            param.metavar = _KIND_METAVARS.get(kind, "PATH" if kind is Path else "VALUE")


class Command(TyperCommand):
    """Every voicekit command's class (``@app.command(..., cls=Command)``): help in metavars.

    Commands should still name their own metavars (FILE, SECONDS, ...); this catches
    what they do not, and typer's own --help option.
    """

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        for param in params:
            _plain(param)
        return params


class Group(TyperGroup):
    """The class of a command group (``typer.Typer(cls=Group)``): its --help without types."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        for param in params:
            _plain(param)
        return params
