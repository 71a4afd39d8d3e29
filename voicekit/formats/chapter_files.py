"""One file per chapter (``--split-chapters``), numbered and tagged with track numbers.

The split writer is an encoder like the others (``split_encoder``): ``write_book``
hands it the output path (a ``.m3u8`` playlist) and it writes the chapter files
beside it, each atomically, then the playlist that lists them in order. The PCM
stream is read once and cut at the chapter marks as it passes.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from voicekit.errors import InputError
from voicekit.formats.encoders import EncodeOptions, Encoder
from voicekit.formats.output import EXTENSIONS, write_atomic
from voicekit.formats.timeline import Timeline

PLAYLIST_SUFFIX = ".m3u8"
_UNSAFE = re.compile(r'[\x00-\x1f/\\:*?"<>|]+')


def safe_name(title: str, limit: int = 80) -> str:
    """A chapter title as a file name on every common file system."""
    name = _UNSAFE.sub(" ", title)
    name = re.sub(r"\s+", " ", name).strip(" .")
    return name[:limit].rstrip(" .") or "Chapter"


def file_names(titles: list[str], fmt: str) -> list[str]:
    """``01 - Title.m4b`` ... numbered by position, zero-padded to the count."""
    width = max(2, len(str(len(titles))))
    ext = EXTENSIONS[fmt]
    return [f"{n:0{width}d} - {safe_name(t)}{ext}" for n, t in enumerate(titles, 1)]


class _Cutter:
    """Reads one PCM stream in order and hands out consecutive spans of it."""

    def __init__(self, pcm: Iterable[np.ndarray]) -> None:
        self._it = iter(pcm)
        self._rest = np.zeros(0, np.int16)

    def take(self, count: int | None) -> Iterator[np.ndarray]:
        """The next ``count`` samples (None: everything left), chunk by chunk."""
        left = count
        while left is None or left > 0:
            if not len(self._rest):
                try:
                    self._rest = np.asarray(next(self._it), dtype=np.int16)
                except StopIteration:
                    return
                continue
            n = len(self._rest) if left is None else min(left, len(self._rest))
            piece, self._rest = self._rest[:n], self._rest[n:]
            if left is not None:
                left -= n
            yield piece


def chapter_files(playlist: Path, fmt: str, timeline: Timeline) -> list[Path]:
    """The files ``write_split`` writes beside ``playlist``, in order."""
    names = file_names([m.title for m in timeline.chapters], fmt)
    return [playlist.parent / name for name in names]


def part_options(options: EncodeOptions, title: str, n: int, count: int) -> EncodeOptions:
    """One chapter file's options: the chapter as title, the book as album, track n of count."""
    meta = dict(options.meta)
    book_title = str(meta.get("title") or "")
    return dataclasses.replace(
        options,
        meta={
            **meta,
            "title": title,
            "album": meta.get("album") or book_title,
            "track": (n, count),
        },
        cover=options.cover_image(),  # read once for the book, not once per file
    )


def write_playlist(
    playlist: Path, options: EncodeOptions, entries: list[tuple[Path, str, float]]
) -> None:
    """The ``.m3u8`` listing (file, title, seconds) in order, under the book's title."""
    lines = ["#EXTM3U"]
    book_title = str(options.meta.get("title") or "")
    if book_title:
        lines.append(f"#PLAYLIST:{book_title}")
    for target, title, seconds in entries:
        lines += [f"#EXTINF:{round(seconds)},{title}", target.name]
    playlist.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_split(
    playlist: Path, fmt: str, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
) -> list[Path]:
    """Chapter files beside ``playlist``, then the playlist itself; returns the files."""
    marks = timeline.chapters
    if not marks:
        raise InputError("nothing to split: the audio has no chapters")
    targets = chapter_files(playlist, fmt, timeline)
    cutter = _Cutter(pcm)
    entries = []
    for n, (mark, target) in enumerate(zip(marks, targets, strict=True), 1):
        last = n == len(marks)
        # the audio before the first mark belongs to the first file; the last takes the rest
        start = 0 if n == 1 else mark.start
        end = timeline.total if last else marks[n].start
        part = part_options(options, mark.title, n, len(marks))
        span = Timeline(timeline.sample_rate, end - start, [])
        write_atomic(target, fmt, span, cutter.take(None if last else end - start), part)
        entries.append((target, mark.title, span.seconds))
    write_playlist(playlist, options, entries)
    return targets


def split_encoder(fmt: str) -> Encoder:
    """An encoder whose "file" is a playlist: it writes the chapter files beside it."""

    def encode(
        path: Path, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
    ) -> None:
        write_split(path, fmt, timeline, pcm, options)

    return encode


def write_book(
    output: Path,
    fmt: str,
    timeline: Timeline,
    pcm: Iterable[np.ndarray],
    options: EncodeOptions,
    *,
    split: bool = False,
    before_replace: Callable[[Path], None] | None = None,
) -> list[Path]:
    """One audiobook file, or (``split``) a file per chapter and ``output`` as their
    playlist, written last; returns the audio files."""
    encoder = split_encoder(fmt) if split else None
    write_atomic(
        output, fmt, timeline, pcm, options, encoder=encoder, before_replace=before_replace
    )
    return chapter_files(output, fmt, timeline) if split else [output]
