"""From a job directory to one PCM stream with its chapter marks, never all in memory."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import JobError
from voicekit.synth.job import iter_segments, segment_lengths


@dataclass(frozen=True)
class ChapterMark:
    index: int
    """The chapter's number in the book (what --chapters takes)."""
    title: str
    start: int
    """First sample."""
    end: int
    """One past the last sample (the pause after a chapter belongs to it)."""


@dataclass(frozen=True)
class Timeline:
    sample_rate: int
    total: int
    """Samples in the whole output."""
    chapters: list[ChapterMark]

    @property
    def seconds(self) -> float:
        return self.total / self.sample_rate


def float_to_pcm16(audio: np.ndarray, volume: float = 1.0) -> np.ndarray:
    """Float audio in [-1, 1] to int16, rounded and clipped."""
    scaled = np.asarray(audio, dtype=np.float32) * (32767.0 * volume)
    return np.clip(np.rint(scaled), -32767, 32767).astype(np.int16)


Place = tuple[int, int]
"""A bucket's (chapter, paragraph): all that decides the pause before it."""


def pause_before(silences: Mapping[str, float], prev: Place | None, here: Place) -> float:
    """Seconds of silence between the bucket at ``prev`` and the next one, at ``here``.

    The plan's estimates use this too, so they count the pauses written here. Sentences
    inside one bucket are always ``silences["sentence"]`` apart.
    """
    if prev is None:
        return 0.0
    if here[0] != prev[0]:
        return float(silences["chapter"])
    if here[1] != prev[1]:
        return float(silences["paragraph"])
    return float(silences["sentence"])


def _gap(manifest: dict[str, Any], prev: dict[str, Any] | None, bucket: dict[str, Any]) -> float:
    return pause_before(
        manifest["silences"],
        None if prev is None else (prev["chapter"], prev["paragraph"]),
        (bucket["chapter"], bucket["paragraph"]),
    )


def chapter_title(manifest: dict[str, Any], chapter: int) -> str:
    info = manifest["chapters"][str(chapter)]
    if info.get("title"):
        return str(info["title"])
    book_title = manifest.get("meta", {}).get("title")
    if info["index"] == 1 and book_title:
        return str(book_title)
    return f"Chapter {info['index']}"


def build_timeline(folder: Path, manifest: dict[str, Any]) -> Timeline:
    """Chapter marks and length from the segments' sentence lengths (their audio stays on disk)."""
    rate = int(manifest["sample_rate"])
    sentence_gap = round(float(manifest["silences"]["sentence"]) * rate)
    pos = 0
    starts: list[tuple[int, int]] = []  # (chapter key, start sample)
    prev = None
    for bucket in manifest["buckets"]:
        lengths = segment_lengths(folder, bucket["hash"])
        if lengths is None:
            raise JobError(
                f"bucket {bucket['id']} has no audio in {folder}",
                hint="rerun the synth command to finish the job",
            )
        pos += round(_gap(manifest, prev, bucket) * rate)
        if prev is None or bucket["chapter"] != prev["chapter"]:
            starts.append((bucket["chapter"], pos))
        pos += int(lengths.sum()) + sentence_gap * (len(lengths) - 1)
        prev = bucket
    marks = []
    for i, (chapter, start) in enumerate(starts):
        end = starts[i + 1][1] if i + 1 < len(starts) else pos
        info = manifest["chapters"][str(chapter)]
        marks.append(
            ChapterMark(
                index=int(info["index"]),
                title=chapter_title(manifest, chapter),
                start=start,
                end=end,
            )
        )
    return Timeline(sample_rate=rate, total=pos, chapters=marks)


def stream_pcm(
    folder: Path, manifest: dict[str, Any], *, block: int = 1 << 16
) -> Iterator[np.ndarray]:
    """int16 PCM of the whole job in order, silences included, one bucket at a time."""
    rate = int(manifest["sample_rate"])
    volume = float(manifest.get("volume", 1.0))
    sentence_gap = np.zeros(round(float(manifest["silences"]["sentence"]) * rate), np.int16)
    prev = None
    buckets = manifest["buckets"]
    segments = iter_segments(folder, [b["hash"] for b in buckets])
    for bucket, segment in zip(buckets, segments, strict=True):
        gap = round(_gap(manifest, prev, bucket) * rate)
        while gap > 0:  # long pauses in blocks, not one big array
            n = min(gap, block)
            yield np.zeros(n, np.int16)
            gap -= n
        pcm = segment.pcm
        if volume != 1.0:
            pcm = np.clip(np.rint(pcm.astype(np.float32) * volume), -32767, 32767).astype(np.int16)
        offset = 0
        for i, length in enumerate(segment.lengths):
            if i:
                yield sentence_gap
            yield pcm[offset : offset + int(length)]
            offset += int(length)
        prev = bucket
