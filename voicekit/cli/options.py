"""The settings flags, defined once: ``synth`` and ``profiles save`` both take them.

Every flag defaults to None so "not given" is known and a profile can fill it
(precedence: flags > profile > defaults).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from voicekit.engine.settings import SETTING_FIELDS, field_doc

_PANEL_VOICE = "Voice"
_PANEL_TEXT = "Text and pauses"
_PANEL_ENGINE = "Engine"
_PANEL_OUTPUT = "Output"


def _opt(name: str, panel: str, *flags: str, **kw: Any) -> Any:
    return typer.Option(*(flags or (f"--{name.replace('_', '-')}",)), help=field_doc(name),
                        rich_help_panel=panel, show_default=False, **kw)


Voice = Annotated[str | None, _opt("voice", _PANEL_VOICE)]
Speaker = Annotated[int | None, _opt("speaker", _PANEL_VOICE)]
LengthScale = Annotated[float | None, _opt("length_scale", _PANEL_VOICE)]
NoiseScale = Annotated[float | None, _opt("noise_scale", _PANEL_VOICE)]
NoiseW = Annotated[float | None, _opt("noise_w", _PANEL_VOICE)]
Seed = Annotated[int | None, _opt("seed", _PANEL_VOICE)]
Volume = Annotated[float | None, _opt("volume", _PANEL_VOICE)]

BucketSize = Annotated[int | None, _opt("bucket_size", _PANEL_TEXT)]
MaxBucketPhonemes = Annotated[int | None, _opt("max_bucket_phonemes", _PANEL_TEXT)]
MaxSentencePhonemes = Annotated[int | None, _opt("max_sentence_phonemes", _PANEL_TEXT)]
SpeakTitles = Annotated[bool | None, _opt("speak_titles", _PANEL_TEXT,
                                          "--speak-titles/--no-speak-titles")]
SentenceSilence = Annotated[float | None, _opt("sentence_silence", _PANEL_TEXT)]
ParagraphSilence = Annotated[float | None, _opt("paragraph_silence", _PANEL_TEXT)]
ChapterSilence = Annotated[float | None, _opt("chapter_silence", _PANEL_TEXT)]

Backend = Annotated[str | None, _opt("backend", _PANEL_ENGINE)]
Device = Annotated[str | None, _opt("device", _PANEL_ENGINE)]
Threads = Annotated[int | None, _opt("threads", _PANEL_ENGINE)]
BatchSize = Annotated[int | None, _opt("batch_size", _PANEL_ENGINE)]
ChunkFrames = Annotated[int | None, _opt("chunk_frames", _PANEL_ENGINE)]
OverlapFrames = Annotated[int | None, _opt("overlap_frames", _PANEL_ENGINE)]
Precision = Annotated[str | None, _opt("precision", _PANEL_ENGINE)]
CudaGraphs = Annotated[bool | None, _opt("cuda_graphs", _PANEL_ENGINE,
                                         "--cuda-graphs/--no-cuda-graphs")]
Compile = Annotated[bool | None, _opt("compile", _PANEL_ENGINE, "--compile/--no-compile")]

Format = Annotated[str | None, _opt("format", _PANEL_OUTPUT, "--format", "-f")]
Bitrate = Annotated[str | None, _opt("bitrate", _PANEL_OUTPUT)]


# One flag per settings field, in the order --help lists them.
SETTINGS_OPTIONS: dict[str, Any] = {
    "voice": Voice, "speaker": Speaker, "length_scale": LengthScale, "noise_scale": NoiseScale,
    "noise_w": NoiseW, "seed": Seed, "volume": Volume, "bucket_size": BucketSize,
    "max_bucket_phonemes": MaxBucketPhonemes, "max_sentence_phonemes": MaxSentencePhonemes,
    "speak_titles": SpeakTitles, "sentence_silence": SentenceSilence,
    "paragraph_silence": ParagraphSilence, "chapter_silence": ChapterSilence,
    "backend": Backend, "device": Device, "threads": Threads, "batch_size": BatchSize,
    "chunk_frames": ChunkFrames, "overlap_frames": OverlapFrames, "precision": Precision,
    "cuda_graphs": CudaGraphs, "compile": Compile, "format": Format, "bitrate": Bitrate,
}  # fmt: skip

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
