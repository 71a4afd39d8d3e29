"""Synthesis settings: one typed dataclass, each default defined once.

Field names are also the TOML keys of profiles and, with dashes, the CLI flags.
Precedence when they meet: flags > profile > these defaults.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import itertools
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

from voicekit.errors import InputError
from voicekit.system.devices import parse_device

BackendName = Literal["auto", "ort", "torch", "openvino"]
"""A backend as settings name it (backends.base.Backend is the protocol itself)."""
Precision = Literal["fp32", "fp16", "bf16"]
HeadingNumbers = Literal["read", "drop"]
UrlReading = Literal["read", "host", "skip"]
CodeReading = Literal["note", "read", "skip"]
TableReading = Literal["read", "skip"]
FORMATS = ("wav", "flac", "mp3", "opus", "m4b")


@dataclass(frozen=True)
class SynthSettings:
    """Everything that shapes a synthesis run, from text splitting to the output file."""

    # --- voice and device -------------------------------------------------
    voice: str | None = None
    """Path to a Piper .onnx voice (.onnx.json beside it); unset: the bundled voice."""
    speaker: int | None = None
    """Speaker id for multi-speaker voices; unset: the voice's default."""
    backend: BackendName = "auto"
    """Inference backend: ort, torch, openvino (CPU only), or auto (torch on CUDA, else ort)."""
    device: str = "auto"
    """auto, cpu, cuda or cuda:N. An explicit device that is absent is an error."""
    threads: int = 0
    """CPU threads for inference, split between the workers; 0: one per worker for onnxruntime
    on the CPU (the audio's bytes then do not depend on the machine), else the physical cores."""
    workers: int = 0
    """Synthesis workers: threads over one copy of the voice for onnxruntime on the CPU,
    else processes with a copy each; 0: auto (one per physical core on the CPU, as many as
    the RAM holds, at most 8; one on CUDA). 1: none beside the main one."""
    cluster: str | None = None
    """Run the batch on a Ray cluster: local (Ray on this machine), auto (the cluster
    `ray start` or RAY_ADDRESS names) or ray://host:port; unset: $VOICEKIT_CLUSTER, else
    no cluster. Needs the cluster extra (README, Clusters)."""

    # --- voice character --------------------------------------------------
    length_scale: float | None = None
    """Speaking pace (>1 slower); unset: the voice's own value."""
    noise_scale: float | None = None
    """Variation of the voice; unset: the voice's own value."""
    noise_w: float | None = None
    """Variation of phoneme durations; unset: the voice's own value."""
    seed: int = 1234
    """Seeds the per-bucket noise: same text, voice, settings and seed give the same audio."""
    volume: float = 1.0
    """Gain applied to the voice's raw output (no per-sentence normalisation)."""

    # --- text splitting ---------------------------------------------------
    bucket_size: int = 6
    """Sentences per bucket, the unit of checkpointing."""
    max_bucket_phonemes: int = 1200
    """Cap on the (estimated) phonemes in one bucket."""
    max_sentence_phonemes: int = 400
    """Longest sentence (phonemes) sent to the voice; longer ones split at clauses, then words."""
    speak_titles: bool = True
    """Read chapter titles aloud at the start of each chapter."""

    # --- reading (what non-fiction holds besides prose) ------------------
    heading_numbers: HeadingNumbers = "read"
    """Section numbers in headings: read ("6.1" as "six one") or drop; never as decimals."""
    urls: UrlReading = "read"
    """URLs and e-mail: read (host, and a short path of words), host (only), or skip."""
    code: CodeReading = "note"
    """Code blocks: note (a short spoken note), read (line by line, symbols in words), skip."""
    code_note: str | None = None
    """What a code block becomes with code = note; unset: "Code example omitted." in the
    voice's language."""
    tables: TableReading = "read"
    """Tables: read (row by row, "header: value") or skip (a short spoken note)."""
    lexicon: str | None = None
    """Pronunciation lexicon: a TOML file of words with a respelling or phonemes (README),
    used on top of lexicon.toml in $VOICEKIT_HOME; unset: only that one, if any."""

    # --- silences (seconds) -----------------------------------------------
    sentence_silence: float = 0.2
    """Pause between sentences of a paragraph."""
    paragraph_silence: float = 0.6
    """Pause between paragraphs."""
    chapter_silence: float = 2.0
    """Pause between chapters."""

    # --- batching and GPU -------------------------------------------------
    batch_size: int = 0
    """Sentences per model call; 0: chosen for the device (1 on CPU, where padding costs more)."""
    chunk_frames: int = 256
    """Vocode long sentences in chunks of this many latent frames (0: whole); bounds memory."""
    overlap_frames: int = 16
    """Latent frames of context each side of a chunk (>= receptive field keeps it exact)."""
    precision: Precision = "fp32"
    """Vocoder precision on CUDA (torch backend)."""
    cuda_graphs: bool = True
    """Capture CUDA graphs at padded shapes (torch backend on CUDA)."""
    compile: bool = False
    """Run the torch modules through torch.compile."""

    # --- output -----------------------------------------------------------
    format: str | None = None
    """Output format (wav, flac, mp3, opus, m4b); unset: the extension, else m4b (EPUB), wav."""
    bitrate: str | None = None
    """Encoder bitrate such as 64k; unset: the format's default."""
    loudness: float = -20.0
    """Integrated loudness target in LUFS, one gain for the whole book (-20: inside ACX's
    -23 to -18 dB RMS with pauses counted); 0: off, the voice's own level times --volume."""
    true_peak: float = -3.0
    """True-peak ceiling in dBTP for --loudness (ACX: peaks at or below -3 dB)."""
    sample_rate: int = 0
    """Output sample rate in Hz (ACX: 44100) for MP3, M4B and FLAC (Opus is always 48000, WAV
    the voice's); 0: the voice's own (22050 for the bundled one)."""
    room_tone_head: float = 0.0
    """Seconds of room tone at the start of each output file (ACX: 0.5 to 1)."""
    room_tone_tail: float = 0.0
    """Seconds of room tone added at the end of each output file (ACX: 1 to 5, pauses
    included)."""
    room_tone_level: float = 0.0
    """Level of the room tone in dBFS RMS, a faint noise under the whole file, pauses included
    (ACX: a noise floor at most -60 dB, but not digital silence); 0: digital silence."""
    credits: bool = False
    """Opening and closing credits (title, authors, narrators; in English) as chapters of
    their own, so files of their own with --split-chapters (ACX)."""
    split_chapters: bool = False
    """One file per chapter (numbered, track-tagged) in a folder named after the book (or -o),
    plus a .m3u8 playlist."""

    def replace(self, **changes: Any) -> SynthSettings:
        return dataclasses.replace(self, **changes)

    def silences(self) -> dict[str, float]:
        """Seconds of pause by kind, as the job manifest hands them to the assembly."""
        return {
            "sentence": self.sentence_silence,
            "paragraph": self.paragraph_silence,
            "chapter": self.chapter_silence,
        }

    def validate(self) -> SynthSettings:
        """Raise InputError naming the first bad value; return self for chaining."""
        _check(self.bucket_size >= 1, "bucket_size", self.bucket_size, "must be at least 1")
        _check(
            self.max_bucket_phonemes >= 50,
            "max_bucket_phonemes",
            self.max_bucket_phonemes,
            "must be at least 50",
        )
        _check(
            20 <= self.max_sentence_phonemes <= 5000,
            "max_sentence_phonemes",
            self.max_sentence_phonemes,
            "must be between 20 and 5000",
        )
        for name in ("sentence_silence", "paragraph_silence", "chapter_silence"):
            value = getattr(self, name)
            _check(0 <= value <= 60, name, value, "must be between 0 and 60 seconds")
        for name in ("length_scale", "noise_scale", "noise_w"):
            value = getattr(self, name)
            _check(value is None or 0 <= value <= 10, name, value, "must be between 0 and 10")
        _check(
            self.length_scale is None or self.length_scale > 0,
            "length_scale",
            self.length_scale,
            "must be above 0",
        )
        _check(0 < self.volume <= 10, "volume", self.volume, "must be above 0 and at most 10")
        _check(
            self.loudness == 0 or -40 <= self.loudness <= -10,
            "loudness",
            self.loudness,
            "must be 0 (off) or between -40 and -10 LUFS",
        )
        _check(-12 <= self.true_peak <= 0, "true_peak", self.true_peak, "must be -12 to 0 dBTP")
        _check(
            self.sample_rate == 0 or 8000 <= self.sample_rate <= 192000,
            "sample_rate",
            self.sample_rate,
            "must be 0 (the voice's) or 8000 to 192000 Hz",
        )
        for name in ("room_tone_head", "room_tone_tail"):
            value = getattr(self, name)
            _check(0 <= value <= 30, name, value, "must be between 0 and 30 seconds")
        _check(
            self.room_tone_level == 0 or -100 <= self.room_tone_level <= -50,
            "room_tone_level",
            self.room_tone_level,
            "must be 0 (digital silence) or between -100 and -50 dBFS",
        )
        _check(self.batch_size >= 0, "batch_size", self.batch_size, "must be 0 (auto) or more")
        _check(
            self.chunk_frames == 0 or self.chunk_frames >= 16,
            "chunk_frames",
            self.chunk_frames,
            "must be 0 (off) or at least 16",
        )
        _check(self.overlap_frames >= 0, "overlap_frames", self.overlap_frames, "must be >= 0")
        _check(self.threads >= 0, "threads", self.threads, "must be 0 (auto) or more")
        _check(self.workers >= 0, "workers", self.workers, "must be 0 (auto) or more")
        _check(
            self.backend in get_args(BackendName),
            "backend",
            self.backend,
            f"must be one of {', '.join(get_args(BackendName))}",
        )
        _check(
            self.precision in get_args(Precision),
            "precision",
            self.precision,
            f"must be one of {', '.join(get_args(Precision))}",
        )
        for name, kind in (
            ("heading_numbers", HeadingNumbers),
            ("urls", UrlReading),
            ("code", CodeReading),
            ("tables", TableReading),
        ):
            value = getattr(self, name)
            choices = get_args(kind)
            _check(value in choices, name, value, f"must be one of {', '.join(choices)}")
        _check(
            self.format is None or self.format in FORMATS,
            "format",
            self.format,
            f"must be one of {', '.join(FORMATS)}",
        )
        parse_device(self.device)  # an InputError naming the setting when it is not one
        return self


def _check(ok: bool, name: str, value: object, why: str) -> None:
    if not ok:
        raise InputError(f"{name.replace('_', '-')} = {value!r} {why}")


SETTING_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in fields(SynthSettings)}


def field_doc(name: str) -> str:
    """The docstring written under a field (used for --help and `profiles show`)."""
    return _field_docs().get(name, "")


@functools.cache
def _field_docs() -> dict[str, str]:
    # Read on first use, not at import: parsing this module's source costs every start-up.
    try:
        tree = ast.parse(inspect.getsource(SynthSettings))
    except (OSError, TypeError):  # no source (frozen install): help texts go without
        return {}
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in itertools.pairwise(body):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = str(nxt.value.value)
    return docs


__all__ = ["FORMATS", "SETTING_FIELDS", "SynthSettings", "field_doc"]
