"""The settings flags, defined once: ``synth`` and ``profiles save`` both take them.

Every flag defaults to None so "not given" is known and a profile can fill it
(precedence: flags > profile > defaults).
"""

from __future__ import annotations

from typing import Annotated, Any

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


def settings_flags(values: dict[str, Any]) -> dict[str, Any]:
    """The settings given on the command line (None means not given)."""
    return {k: v for k, v in values.items() if k in SETTING_FIELDS and v is not None}
