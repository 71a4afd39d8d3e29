"""Synthetic timelines and read-back helpers (mutagen and ``ffmpeg -f ffmetadata``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from voicekit.formats.chapters import Metadata
from voicekit.formats.ffmpeg import decode_pcm, read_metadata
from voicekit.formats.timeline import ChapterMark, Timeline


def timeline(
    chapter_seconds: list[float], titles: list[str] | None = None, rate: int = 16000
) -> Timeline:
    marks, pos = [], 0
    for n, seconds in enumerate(chapter_seconds, 1):
        length = round(seconds * rate)
        title = titles[n - 1] if titles else f"Chapter {n}"
        marks.append(ChapterMark(n, title, pos, pos + length))
        pos += length
    return Timeline(rate, pos, marks)


def tone(tl: Timeline, block: int = 4096) -> Iterator[np.ndarray]:
    """A different pitch per chapter, so a cut in the wrong place would show."""
    t = np.arange(block) / tl.sample_rate
    for n, mark in enumerate(tl.chapters):
        wave = (np.sin(2 * np.pi * (200 + 100 * n) * t) * 8000).astype(np.int16)
        left = mark.end - mark.start
        while left > 0:
            k = min(left, block)
            yield wave[:k]
            left -= k


def silence(total: int, block: int = 1 << 19) -> Iterator[np.ndarray]:
    zeros = np.zeros(block, np.int16)
    while total > 0:
        k = min(total, block)
        yield zeros[:k]
        total -= k


def ffmeta(path: Path) -> Metadata:
    """Tags and chapters as ffmpeg reads them (what ``convert`` carries over)."""
    return read_metadata(path)


def mp4_top_atoms(path: Path) -> list[tuple[bytes, int, int]]:
    """(name, offset, length) of the top-level atoms, for checking moov comes before mdat."""
    from mutagen.mp4 import Atoms

    with path.open("rb") as fh:
        return [(a.name, a.offset, a.length) for a in Atoms(fh).atoms]


def decoded_samples(path: Path, rate: int) -> int:
    return sum(len(c) for c in decode_pcm(path, rate))
