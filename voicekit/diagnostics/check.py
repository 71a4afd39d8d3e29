"""``voicekit check``: measure any audiobook against a delivery standard (ACX).

ACX's audio submission requirements, as rules:

=================  ===============================  =========================================
rule               requirement                      how it is measured
=================  ===============================  =========================================
format             MP3, 192 kb/s or more, CBR       the file's header (mutagen)
sample rate        44.1 kHz                         the file's header
channels           the same in every file           the file's header, across the folder
duration           at most 120 minutes              the file's header (no decoding)
rms                -23 to -18 dB                    whole file, pauses included (as ACX does)
peak               -3 dB or lower                   highest sample
noise floor        -60 dB or lower                  quietest 500 ms window (RMS)
head room tone     0.5 to 1 s                       from the start to the first sound
tail room tone     1 to 5 s                         from the last sound to the end
=================  ===============================  =========================================

Levels are measured on the decoded audio, mixed to mono, streamed in blocks (a
two-hour file is never in memory). "Sound" is a 10 ms frame louder than -50 dB RMS,
10 dB above the loudest noise floor ACX allows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import InputError
from voicekit.formats import ffmpeg

STANDARDS = ("acx",)
AUDIO_SUFFIXES = frozenset({".mp3", ".m4b", ".m4a", ".aac", ".flac", ".wav", ".opus", ".ogg"})

RMS_RANGE_DB = (-23.0, -18.0)
PEAK_MAX_DB = -3.0
NOISE_FLOOR_MAX_DB = -60.0
HEAD_RANGE_S = (0.5, 1.0)
TAIL_RANGE_S = (1.0, 5.0)
MAX_MINUTES = 120.0
SAMPLE_RATE = 44100
MIN_BITRATE = 192_000
SOUND_DB = -50.0
FRAME_S = 0.01
NOISE_WINDOW_S = 0.5

_RERENDER = "re-render with `voicekit synth --profile acx`"


@dataclass
class Rule:
    """One requirement, what was measured, and how to fix it when it fails."""

    name: str
    ok: bool
    measured: str
    required: str
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.name, "ok": self.ok, "measured": self.measured,
                "required": self.required, "fix": "" if self.ok else self.fix}  # fmt: skip


@dataclass
class FileReport:
    path: Path
    rules: list[Rule] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "ok": self.ok, "checks": [r.to_dict() for r in self.rules]}


@dataclass
class Report:
    standard: str
    files: list[FileReport]

    @property
    def ok(self) -> bool:
        return all(f.ok for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "standard": self.standard,
                "files": [f.to_dict() for f in self.files]}  # fmt: skip


@dataclass(frozen=True)
class Header:
    """What the file says about itself, without decoding it."""

    codec: str
    sample_rate: int
    channels: int | None
    seconds: float | None
    bitrate: int | None
    """bits per second; None when the container does not say."""
    cbr: bool | None
    """Constant bitrate (MP3 only); None when unknown or not MP3."""


@dataclass(frozen=True)
class Levels:
    rms_db: float
    peak_db: float
    noise_floor_db: float
    head_s: float
    tail_s: float
    seconds: float


def audio_files(target: Path) -> list[Path]:
    """``target`` itself, or a folder's audio files in name order (not recursive)."""
    if not target.exists():
        raise InputError(f"not found: {target}")
    if target.is_dir():
        files = sorted(
            p for p in target.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
        )
        if not files:
            raise InputError(f"{target} holds no audio files ({', '.join(sorted(AUDIO_SUFFIXES))})")
        return files
    return [target]


def read_header(path: Path) -> Header:
    """Codec, rate, channels, length and bitrate from the header (mutagen, else ffmpeg)."""
    import mutagen
    from mutagen.mp3 import MP3, BitrateMode

    try:
        found = mutagen.File(path)
    except (mutagen.MutagenError, OSError, ValueError):
        found = None
    info = getattr(found, "info", None)
    if info is not None and getattr(info, "sample_rate", 0):
        cbr = None
        if isinstance(found, MP3):
            mode = info.bitrate_mode
            cbr = mode == BitrateMode.CBR if mode != BitrateMode.UNKNOWN else True
        codec = "mp3" if isinstance(found, MP3) else type(found).__name__.lower()
        return Header(
            codec=codec,
            sample_rate=int(info.sample_rate),
            channels=getattr(info, "channels", None),
            seconds=float(info.length) if getattr(info, "length", None) else None,
            bitrate=int(info.bitrate) if getattr(info, "bitrate", None) else None,
            cbr=cbr,
        )
    probed = ffmpeg.probe(path)  # InputError when ffmpeg cannot read it either
    return Header(probed.codec, probed.sample_rate, None, probed.seconds, None, None)


class _Meter:
    """Running RMS, peak, quietest 500 ms and first/last sound over a streamed signal."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.frame = max(1, round(rate * FRAME_S))
        self.per_window = max(1, round(NOISE_WINDOW_S / FRAME_S))
        self.sum_sq = 0.0
        self.count = 0
        self.peak = 0.0
        self.frames = 0
        self.first_sound: int | None = None
        self.last_sound: int | None = None
        self.quietest = math.inf
        self._carry = np.zeros(0, np.float32)
        self._window = np.zeros(0, np.float64)  # frame energies not yet in a whole window

    def add(self, chunk: np.ndarray) -> None:
        x = chunk.astype(np.float32) / np.float32(32768.0)
        if not len(x):
            return
        self.sum_sq += float(np.dot(x.astype(np.float64), x.astype(np.float64)))
        self.count += len(x)
        self.peak = max(self.peak, float(np.abs(x).max()))
        x = np.concatenate([self._carry, x])
        whole = len(x) // self.frame * self.frame
        self._carry = x[whole:]
        if not whole:
            return
        energy = (x[:whole].reshape(-1, self.frame) ** 2).mean(axis=1)
        loud = np.flatnonzero(energy > 10 ** (SOUND_DB / 10))
        if len(loud):
            if self.first_sound is None:
                self.first_sound = self.frames + int(loud[0])
            self.last_sound = self.frames + int(loud[-1])
        self.frames += len(energy)
        pending = np.concatenate([self._window, energy])
        whole = len(pending) // self.per_window * self.per_window
        if whole:
            windows = pending[:whole].reshape(-1, self.per_window).mean(axis=1)
            self.quietest = min(self.quietest, float(windows.min()))
        self._window = pending[whole:]

    def levels(self) -> Levels:
        seconds = self.count / self.rate
        if self.quietest is math.inf and len(self._window):  # shorter than one window
            self.quietest = float(self._window.mean())
        first = self.frames if self.first_sound is None else self.first_sound
        last = -1 if self.last_sound is None else self.last_sound
        return Levels(
            rms_db=_db(self.sum_sq / self.count) if self.count else -math.inf,
            peak_db=20 * math.log10(self.peak) if self.peak > 0 else -math.inf,
            noise_floor_db=_db(self.quietest),
            head_s=first * FRAME_S if self.first_sound is not None else seconds,
            tail_s=max(0.0, seconds - (last + 1) * FRAME_S) if last >= 0 else seconds,
            seconds=seconds,
        )


def _db(power: float) -> float:
    return 10 * math.log10(power) if power > 0 else -math.inf


def measure_levels(pcm: Iterable[np.ndarray], rate: int) -> Levels:
    meter = _Meter(rate)
    for chunk in pcm:
        meter.add(chunk)
    return meter.levels()


def _fmt_db(value: float) -> str:
    return "-inf dB (digital silence)" if math.isinf(value) else f"{value:.1f} dB"


def header_rules(header: Header) -> list[Rule]:
    """The rules the header alone decides."""
    rules = []
    kbps = f"{header.bitrate / 1000:.0f} kb/s" if header.bitrate else "unknown bitrate"
    mode = {True: " CBR", False: " VBR", None: ""}[header.cbr]
    fmt_ok = (
        header.codec == "mp3"
        and header.bitrate is not None
        and header.bitrate >= MIN_BITRATE - 1000
        and header.cbr is not False
    )
    rules.append(Rule(
        "format", fmt_ok, f"{header.codec}, {kbps}{mode}", "MP3, 192 kb/s or more, CBR",
        f"encode as 192 kb/s CBR MP3: {_RERENDER}, or "
        "`voicekit convert IN -f mp3 --bitrate 192k`",
    ))  # fmt: skip
    rules.append(Rule(
        "sample rate", header.sample_rate == SAMPLE_RATE, f"{header.sample_rate} Hz",
        f"{SAMPLE_RATE} Hz", f"resample to 44.1 kHz: {_RERENDER}, or ffmpeg -ar 44100",
    ))  # fmt: skip
    if header.seconds is not None:
        minutes = header.seconds / 60
        rules.append(Rule(
            "duration", minutes <= MAX_MINUTES, f"{minutes:.1f} min",
            f"at most {MAX_MINUTES:.0f} min",
            "split it into files under 120 minutes (one per chapter: --split-chapters)",
        ))  # fmt: skip
    return rules


def level_rules(levels: Levels) -> list[Rule]:
    lo, hi = RMS_RANGE_DB
    rms_fix = (
        "raise the level" if levels.rms_db < lo else "lower the level"
    ) + f" to about -20 dB RMS: `voicekit synth --loudness -20`, or {_RERENDER}"
    head_lo, head_hi = HEAD_RANGE_S
    tail_lo, tail_hi = TAIL_RANGE_S
    return [
        Rule("rms", lo <= levels.rms_db <= hi, _fmt_db(levels.rms_db), f"{lo:g} to {hi:g} dB",
             rms_fix),
        Rule("peak", levels.peak_db <= PEAK_MAX_DB, _fmt_db(levels.peak_db),
             f"at most {PEAK_MAX_DB:g} dB",
             f"limit the peaks: `voicekit synth --true-peak -3`, or {_RERENDER}"),
        Rule("noise floor", levels.noise_floor_db <= NOISE_FLOOR_MAX_DB,
             _fmt_db(levels.noise_floor_db), f"at most {NOISE_FLOOR_MAX_DB:g} dB",
             "record in a quieter room or apply noise reduction; a file with no pause of "
             "500 ms or more has no room tone to measure"),
        Rule("head room tone", head_lo <= levels.head_s <= head_hi, f"{levels.head_s:.2f} s",
             f"{head_lo:g} to {head_hi:g} s",
             f"{'add' if levels.head_s < head_lo else 'trim'} room tone before the first "
             f"word: {_RERENDER}"),
        Rule("tail room tone", tail_lo <= levels.tail_s <= tail_hi, f"{levels.tail_s:.2f} s",
             f"{tail_lo:g} to {tail_hi:g} s",
             f"{'add' if levels.tail_s < tail_lo else 'trim'} room tone after the last "
             f"word: {_RERENDER}"),
    ]  # fmt: skip


def check_file(path: Path, header: Header | None = None) -> FileReport:
    header = header or read_header(path)
    report = FileReport(path, header_rules(header))
    levels = measure_levels(ffmpeg.decode_pcm(path, header.sample_rate), header.sample_rate)
    report.rules += level_rules(levels)
    return report


def check(target: Path, standard: str = "acx") -> Report:
    """Every audio file at ``target`` against ``standard``."""
    if standard not in STANDARDS:
        raise InputError(f"unknown standard '{standard}'; choose from {', '.join(STANDARDS)}")
    files = audio_files(target)
    headers = {path: read_header(path) for path in files}
    reports = [check_file(path, headers[path]) for path in files]
    layouts = {h.channels for h in headers.values() if h.channels is not None}
    if len(files) > 1:
        common = len(layouts) <= 1
        for report in reports:
            channels = headers[report.path].channels
            report.rules.append(Rule(
                "channels", common, f"{channels if channels is not None else '?'} channel(s)",
                "the same in every file", "encode every file mono (or every file stereo)",
            ))  # fmt: skip
    return Report(standard, reports)
