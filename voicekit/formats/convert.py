"""Re-encode without re-synthesis: any audio ffmpeg reads (a finished job folder comes
through ``synth.assemble.open_source``, the opener the command line passes in).

Chapters and tags come over from the source where it has them (a job's manifest;
a file's chapters and tags as ffmpeg reads them); a chapters file, title, author
and cover given by the user replace them.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import InputError
from voicekit.formats import ffmpeg
from voicekit.formats import tags as tagging
from voicekit.formats.chapter_files import PLAYLIST_SUFFIX, write_book
from voicekit.formats.chapters import (
    ChapterSpec,
    format_time,
    read_chapters_file,
    to_marks,
    write_ffmetadata,
)
from voicekit.formats.encoders import DEFAULT_BITRATES, EncodeOptions, Encoder, bitrate_for
from voicekit.formats.images import sniff_image
from voicekit.formats.loudness import DEFAULT_TRUE_PEAK_DBTP, normalise
from voicekit.formats.output import EXTENSIONS, check_output, check_target, write_atomic
from voicekit.formats.tags import EMBEDDABLE, Cover, load_cover
from voicekit.formats.timeline import Timeline


@dataclass
class Source:
    """Audio to re-encode: its timeline, a PCM stream factory, tags and cover."""

    path: Path
    timeline: Timeline
    pcm: Any
    """Callable returning a fresh iterator of int16 mono chunks."""
    meta: dict[str, Any] = field(default_factory=dict)
    cover: Path | Cover | None = None
    name: str = ""
    """Base name for default outputs."""
    loudness: float | None = None
    """The loudness target its audio wants (a job's --loudness); None: as it is."""
    true_peak: float = DEFAULT_TRUE_PEAK_DBTP


@dataclass
class ConvertResult:
    output: str
    format: str
    audio_seconds: float
    chapters: int
    files: list[str]
    stream_copy: bool = False
    """The audio was copied as it was (only tags, chapters or cover changed)."""
    loudness: dict[str, float] | None = None
    """As synth reports it, when the audio was normalised."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": self.output,
            "format": self.format,
            "audio_seconds": round(self.audio_seconds, 3),
            "chapters": self.chapters,
            "files": self.files,
            "stream_copy": self.stream_copy,
            "loudness": self.loudness,
        }


@contextlib.contextmanager
def open_file(path: Path) -> Iterator[Source]:
    """An audio file as a Source: ``convert``'s opener unless it is given another."""
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an audio file")
    yield file_source(path)


def file_source(path: Path) -> Source:
    """Any audio ffmpeg reads, with the chapters, tags and cover it carries."""
    binary = ffmpeg.find_ffmpeg()
    info = ffmpeg.probe(path, binary)
    rate = info.sample_rate
    if info.seconds is not None:
        total = round(info.seconds * rate)
    else:  # the container does not say: count by decoding once
        total = sum(len(c) for c in ffmpeg.decode_pcm(path, rate, binary))
    found = ffmpeg.read_metadata(path, binary, info)
    marks = to_marks(_usable(found.chapters, rate, total), rate, total)
    cover = None
    if info.has_cover:
        data = ffmpeg.extract_cover(path, binary) or b""
        mime = sniff_image(data)
        cover = Cover(data, mime) if mime in EMBEDDABLE else None  # others are left behind
    return Source(
        path=path,
        timeline=Timeline(rate, total, marks),
        pcm=lambda: ffmpeg.decode_pcm(path, rate, binary),
        meta=_meta_from_tags(found.tags),
        cover=cover,
        name=path.stem,
    )


def _usable(specs: list[ChapterSpec], rate: int, total: int) -> list[ChapterSpec]:
    """A source's own chapters, in order, without duplicates or marks past the end.

    (Unlike a chapters file the user wrote, a file's chapters are taken as they come.)
    """
    kept: list[ChapterSpec] = []
    for spec in sorted(specs, key=lambda s: s.start):
        start = round(spec.start * rate)
        if start < total and (not kept or start > round(kept[-1].start * rate)):
            kept.append(spec)
    return kept


def _meta_from_tags(tags: dict[str, str]) -> dict[str, Any]:
    def first(*keys: str) -> str:
        return next((tags[k].strip() for k in keys if tags.get(k, "").strip()), "")

    people = first("album_artist", "artist", "author", "composer")
    authors = [a.strip() for a in people.split(";") if a.strip()]
    # the composer is the narrator in audiobook tags (synth --narrator), unless it is all
    # the file names as its author
    voices = first("composer", "narrator") if first("album_artist", "artist", "author") else ""
    return {
        "title": first("title", "album"),
        "album": first("album"),
        "authors": authors,
        "genre": first("genre"),
        "date": first("date", "year", "creation_time")[:10],
        "description": first("description", "comment", "synopsis"),
        "publisher": first("publisher", "organization"),
        "language": first("language"),
        "narrators": [n.strip() for n in voices.split(";") if n.strip()],
        "series": first("series", "mvnm"),
        "series_index": first("series-part", "series_part", "mvin"),
    }


# A decoder gives a few milliseconds more or fewer than a header says (codec delay and
# padding); a second short is missing audio, not rounding.
SHORT_TOLERANCE_S = 1.0


def _fit(
    pcm: Iterable[np.ndarray], total: int, rate: int = 0, path: Path | None = None
) -> Iterator[np.ndarray]:
    """Exactly ``total`` samples: a decoder may give a few more or fewer than the header said.

    Audio that ends over SHORT_TOLERANCE_S before its declared length is an error, not
    padded with silence: the file is cut short (an interrupted download or copy), or its
    header only guessed the length. Either way the chapters and the length we would
    write are wrong.
    """
    left = total
    for chunk in pcm:
        if left <= 0:
            continue  # keep reading so the decoder ends normally
        piece = chunk[:left]
        left -= len(piece)
        yield piece
    if rate and left > SHORT_TOLERANCE_S * rate:
        name = path or "the input"
        raise InputError(
            f"{name} ends at {format_time((total - left) / rate)}, "
            f"{format_time(left / rate)} before the {format_time(total / rate)} its header "
            "declares: the file is cut short or its header is wrong",
            hint=f"re-download it, or remux it first (ffmpeg -i {name} -c copy fixed"
            f"{path.suffix if path else ''}) and convert that",
        )
    block = np.zeros(min(max(left, 0), 1 << 16), np.int16)
    while left > 0:
        n = min(left, len(block))
        yield block[:n]
        left -= n


def default_output(source: Source, fmt: str, split: bool) -> Path:
    folder = source.path.parent
    if split:
        return folder / source.name
    return folder / f"{source.name}{EXTENSIONS[fmt]}"


def convert(
    source_path: Path,
    output: Path | None,
    fmt: str,
    *,
    opener: Callable[[Path], AbstractContextManager[Source]] | None = None,
    force: bool = False,
    bitrate: str | None = None,
    title: str | None = None,
    authors: list[str] | None = None,
    cover: Path | None = None,
    chapters_file: Path | None = None,
    split: bool = False,
    loudness: float | None = None,
    true_peak: float | None = None,
) -> ConvertResult:
    """``loudness``: a target in LUFS (0: leave the level alone); None: the source's own
    wish (a job folder's --loudness), else the level as it is."""
    # the user's options are read, once, and fail before the source is opened or decoded
    if loudness and not -40 <= loudness <= -10:
        raise InputError(f"--loudness {loudness:g} must be 0 (off) or between -40 and -10 LUFS")
    if true_peak is not None and not -12 <= true_peak <= 0:
        raise InputError(f"--true-peak {true_peak:g} must be between -12 and 0 dBTP")
    if fmt in DEFAULT_BITRATES:
        bitrate_for(fmt, bitrate)
    user_cover = load_cover(cover) if cover is not None else None
    specs = read_chapters_file(chapters_file) if chapters_file is not None else None
    with (opener or open_file)(source_path) as source:
        target = output or default_output(source, fmt, split)
        final = target / f"{source.name}{PLAYLIST_SUFFIX}" if split else target
        check_target(final, (source_path,))  # the one guard synth uses too
        if split:
            if target.exists() and not target.is_dir():
                raise InputError(f"with --split-chapters, -o is a folder; {target} is a file")
            target.mkdir(parents=True, exist_ok=True)
        check_output(final, force, (source_path,))
        timeline = source.timeline
        if specs is not None:
            marks = to_marks(specs, timeline.sample_rate, timeline.total, source=str(chapters_file))
            timeline = Timeline(timeline.sample_rate, timeline.total, marks)
        elif split and not timeline.chapters:
            raise InputError(
                f"{source_path} has no chapters to split at",
                hint="give them with --chapters-file",
            )
        meta = dict(source.meta)
        if title:
            meta["title"] = title
            meta["album"] = title
        if authors:
            meta["authors"] = list(authors)
        meta["title"] = meta.get("title") or source.name
        options = EncodeOptions(
            bitrate=bitrate, meta=meta, cover=user_cover or source.cover, protect=(source_path,)
        )
        options.cover_image()  # a job folder's bad cover fails now, before any audio is decoded
        target = source.loudness if loudness is None else (loudness or None)
        if not split and bitrate is None and target is None and _copyable(source, fmt):
            write_atomic(final, fmt, timeline, (), options, encoder=_remux(source.path, fmt))
            return ConvertResult(
                str(final), fmt, timeline.seconds, len(timeline.chapters), [str(final)], True
            )
        pcm, plan = normalise(
            lambda: _fit(source.pcm(), timeline.total, timeline.sample_rate, source.path),
            timeline.sample_rate,
            target_lufs=target,
            true_peak_dbtp=source.true_peak if true_peak is None else true_peak,
            lossy=fmt not in ("wav", "flac"),
        )
        files = write_book(final, fmt, timeline, pcm, options, split=split)
        return ConvertResult(
            str(final), fmt, timeline.seconds, len(timeline.chapters), [str(f) for f in files],
            loudness=plan.to_dict() if plan else None,
        )


_COPY_CODECS = {"m4b": "aac", "mp3": "mp3", "flac": "flac", "opus": "opus"}
"""Formats whose audio a retag copies as it is, by the codec the source must hold."""
_COPY_ARGS = {
    # ipod muxer, brand and moov first as encode_m4b writes them
    "m4b": ["-movflags", "+faststart", "-brand", "M4B ", "-f", "ipod"],
    # no ID3 from ffmpeg: mutagen writes all of it, as encode_mp3 does
    "mp3": ["-id3v2_version", "0", "-write_id3v1", "0", "-f", "mp3"],
    "flac": ["-f", "flac"],
    "opus": ["-f", "opus"],
}


def _copyable(source: Source, fmt: str) -> bool:
    """Same format in and out, from a file: only tags, chapters or cover change.

    A second lossy pass (AAC to AAC) costs quality and time for nothing then; the audio
    packets are copied instead and the tags written anew. A job folder is PCM, and
    WAV has nothing to retag, so both are encoded as before.
    """
    if fmt not in _COPY_CODECS or not source.path.is_file():
        return False
    return ffmpeg.probe(source.path).codec == _COPY_CODECS[fmt]


def _remux(source: Path, fmt: str) -> Encoder:
    """An encoder that copies ``source``'s audio packets, then tags like the real encoder."""

    def encode(path: Path, timeline: Timeline, pcm: Any, options: EncodeOptions) -> None:
        tags = tagging.Tags.from_meta(options.meta, options.cover_image())
        binary = ffmpeg.find_ffmpeg()
        chapters = fmt == "m4b" and timeline.chapters
        with contextlib.ExitStack() as stack:
            extra: list[str] = []
            if chapters:  # the QuickTime chapter track is ffmpeg's to write, as in encode_m4b
                folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="voicekit-"))
                meta = Path(folder) / "chapters.txt"
                meta.write_text(
                    write_ffmetadata(timeline.chapters, timeline.sample_rate), encoding="utf-8"
                )
                extra = ["-f", "ffmetadata", "-i", str(meta)]
            # the old tags and chapters are dropped: every one we keep is written again below
            args = [
                "-y", "-i", str(source), *extra, "-map", "0:a:0", "-c", "copy",
                "-map_metadata", "-1", "-map_chapters", "1" if chapters else "-1",
                *_COPY_ARGS[fmt], str(path),
            ]  # fmt: skip
            ffmpeg.run(binary, args, what=f"copy the audio of {source.name}")
        if fmt == "m4b":
            tagging.fix_mp4_chapters(path, len(timeline.chapters))
            tagging.tag_mp4(path, tags)
        elif fmt == "mp3":
            tagging.tag_mp3(path, tags, timeline.chapters, timeline.sample_rate)
        else:
            tagging.tag_vorbis(path, fmt, tags, timeline.chapters, timeline.sample_rate)

    return encode
