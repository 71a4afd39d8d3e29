"""Chapter lists: reading chapter files (simple, FFMETADATA, JSON) and writing FFMETADATA.

A chapters file is one of:

* lines ``[H:]MM:SS[.mmm] Title`` (``#`` starts a comment; hours may pass 24);
* ffmpeg's FFMETADATA (``;FFMETADATA1`` with ``[CHAPTER]`` sections);
* JSON: a list of ``{"start": seconds or "H:MM:SS", "title": ...}``, or an object
  with such a ``"chapters"`` list (ffprobe's ``-show_chapters -of json`` works too).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from voicekit.errors import InputError
from voicekit.formats.timeline import ChapterMark

_TIME = re.compile(r"^(?:(\d+):)?(\d+):(\d\d(?:[.,]\d+)?)$")
_LINE = re.compile(r"^\s*((?:\d+:)?\d+:\d\d(?:[.,]\d+)?)\s*(?:[-–—|]\s*)?(.*?)\s*$")


@dataclass(frozen=True)
class ChapterSpec:
    start: float
    """Seconds from the start of the audio."""
    title: str
    # No end: a chapter runs to the next one's start (or the end of the audio),
    # whatever a chapters file or source says.


@dataclass
class Metadata:
    """What an FFMETADATA text holds."""

    tags: dict[str, str] = field(default_factory=dict)
    chapters: list[ChapterSpec] = field(default_factory=list)


# --------------------------------------------------------------------------- times
def parse_time(text: str) -> float:
    """``[H:]MM:SS[.mmm]`` or plain seconds to seconds; ValueError if neither."""
    text = text.strip()
    match = _TIME.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        sec = float(seconds.replace(",", "."))
        if hours is not None and int(minutes) >= 60:
            raise ValueError(f"minutes must be below 60 in {text!r}")
        return int(hours or 0) * 3600 + int(minutes) * 60 + sec
    value = float(text)
    if not math.isfinite(value):  # JSON's NaN and Infinity, or "1e999"
        raise ValueError(f"{text!r} is not a finite time")
    if value < 0:
        raise ValueError(f"negative time {text!r}")
    return value


def format_time(seconds: float) -> str:
    """``HH:MM:SS.mmm``; hours keep counting past 24 (no day wrap)."""
    millis = round(seconds * 1000)
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _seconds(value: float) -> str:
    """A time for a message: ``HH:MM:SS.mmm``, or plain seconds when that is absurdly long."""
    return format_time(value) if value < 1e12 else f"{value:g} s"


# --------------------------------------------------------------------------- FFMETADATA
def _escape(value: str) -> str:
    return re.sub(r"([=;#\\\n])", r"\\\1", value)


def write_ffmetadata(marks: list[ChapterMark], sample_rate: int) -> str:
    """Chapters in sample units (TIMEBASE 1/rate): exact, whatever the length."""
    lines = [";FFMETADATA1"]
    for mark in marks:
        lines += [
            "[CHAPTER]",
            f"TIMEBASE=1/{sample_rate}",
            f"START={mark.start}",
            f"END={mark.end}",
            f"title={_escape(mark.title)}",
        ]
    return "\n".join(lines) + "\n"


def _logical_lines(text: str) -> list[str]:
    """Lines with backslash escapes resolved, a trailing backslash joining the next line."""
    out: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append("\x00" + text[i + 1])  # escaped: never a separator
            i += 2
            continue
        if ch == "\n":
            out.append("".join(current))
            current = []
        elif ch != "\r":
            current.append(ch)
        i += 1
    out.append("".join(current))
    return out


def _unmark(text: str) -> str:
    return text.replace("\x00", "")


def parse_ffmetadata(text: str) -> Metadata:
    meta = Metadata()
    section: str | None = None
    chapter: dict[str, str] = {}
    raw_chapters: list[dict[str, str]] = []
    for line in _logical_lines(text):
        if not line or line.startswith((";", "#")):
            continue
        if line.startswith("["):
            section = _unmark(line).strip("[] ").upper()
            if section == "CHAPTER":
                chapter = {}
                raw_chapters.append(chapter)
            continue
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = _unmark(key).strip(), _unmark(value)
        if section is None:
            meta.tags[key.lower()] = value
        elif section == "CHAPTER":
            chapter[key.lower()] = value
    for n, ch in enumerate(raw_chapters, 1):
        try:
            base = Fraction(ch.get("timebase", "1/1000"))
            start = float(int(ch["start"]) * base)
        except (KeyError, ValueError, ZeroDivisionError, OverflowError) as exc:
            raise InputError(f"FFMETADATA chapter {n} has no valid TIMEBASE/START") from exc
        meta.chapters.append(ChapterSpec(start, ch.get("title", "")))
    return meta


# --------------------------------------------------------------------------- chapter files
def read_chapters_file(path: Path) -> list[ChapterSpec]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as exc:
        raise InputError(f"chapters file not found: {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read chapters file {path}: {exc}") from exc
    stripped = text.lstrip()
    if stripped.startswith(";FFMETADATA"):
        specs = parse_ffmetadata(text).chapters
    elif stripped.startswith(("[", "{")):
        specs = _parse_json(text, path)
    else:
        specs = _parse_lines(text, path)
    if not specs:
        raise InputError(f"chapters file {path} lists no chapters")
    return specs


def _parse_lines(text: str, path: Path) -> list[ChapterSpec]:
    specs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise InputError(f"{path}:{number}: expected '[H:]MM:SS[.mmm] Title', got {line!r}")
        try:
            start = parse_time(match.group(1))
        except ValueError as exc:
            raise InputError(f"{path}:{number}: {exc}") from exc
        specs.append(ChapterSpec(start, match.group(2)))
    return specs


def _parse_json(text: str, path: Path) -> list[ChapterSpec]:
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise InputError(f"chapters file {path} is not valid JSON: {exc}") from exc
    items = data.get("chapters") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise InputError(f"chapters file {path}: expected a list of chapters")
    specs = []
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise InputError(f"chapters file {path}: chapter {n} is not an object")
        start = item.get("start", item.get("start_time"))
        title = item.get("title") or (item.get("tags") or {}).get("title") or ""
        try:
            start_s = parse_time(str(start))
        except ValueError as exc:
            raise InputError(f"chapters file {path}: chapter {n} has a bad time: {exc}") from exc
        specs.append(ChapterSpec(start_s, str(title)))
    return specs


# --------------------------------------------------------------------------- to samples
def to_marks(
    specs: list[ChapterSpec], sample_rate: int, total: int, *, source: str = "chapters"
) -> list[ChapterMark]:
    """Specs in seconds to marks in samples; order and range checked, ends filled in."""
    marks: list[ChapterMark] = []
    for n, spec in enumerate(specs, 1):
        # Checked in seconds, before rounding: a start of 1e308 s has no sample number.
        name = f"{source}: chapter {n} ({spec.title or 'untitled'})"
        if not math.isfinite(spec.start):
            raise InputError(f"{name} starts at {spec.start}, not a finite time")
        if spec.start < 0:
            raise InputError(
                f"{name} starts at -{format_time(-spec.start)}, "
                "before the beginning of the audio"
            )
        position = spec.start * sample_rate
        if not math.isfinite(position) or (total and round(position) >= total):
            raise InputError(
                f"{name} starts at {_seconds(spec.start)}, after the end of the audio "
                f"({format_time(total / sample_rate)})"
            )
    starts = [round(s.start * sample_rate) for s in specs]
    for n, (spec, start) in enumerate(zip(specs, starts, strict=True), 1):
        if n > 1 and start <= starts[n - 2]:
            raise InputError(
                f"{source}: chapter {n} ({spec.title or 'untitled'}) starts at "
                f"{format_time(spec.start)}, not after the chapter before it"
            )
        end = starts[n] if n < len(specs) else total
        marks.append(
            ChapterMark(
                index=n, title=spec.title or f"Chapter {n}", start=start, end=max(end, start)
            )
        )
    return marks
