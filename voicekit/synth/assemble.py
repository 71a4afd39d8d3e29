"""From a job folder to one PCM stream with its chapter marks, never all in memory.

Pauses (sentence, paragraph, chapter) and ``--volume`` are applied here, not in the
segments, so changing them needs no re-synthesis. :func:`open_source` offers a
finished job to ``formats.convert`` like any audio file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicekit.errors import InputError, JobError
from voicekit.formats.convert import Source, open_file
from voicekit.formats.output import EXTENSIONS
from voicekit.formats.timeline import ChapterMark, Timeline
from voicekit.synth.job import MANIFEST, Job, iter_segments, read_segment, segment_lengths
from voicekit.synth.manifest import Manifest, ManifestBucket

JOB_SUFFIX = ".voicekit-job"

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


def _gap(manifest: Manifest, prev: ManifestBucket | None, bucket: ManifestBucket) -> int:
    """Samples of silence before ``bucket``."""
    seconds = pause_before(
        manifest.silences,
        None if prev is None else (prev.chapter, prev.paragraph),
        (bucket.chapter, bucket.paragraph),
    )
    return round(seconds * manifest.sample_rate)


@dataclass(frozen=True)
class Placed:
    """Where one bucket of the book lies on the timeline (samples)."""

    index: int
    """Its place in ``manifest.buckets``."""
    start: int
    """Its first sentence's first sample (the pause before it ends here)."""
    end: int
    gap: int
    """Samples of silence before it."""
    lengths: np.ndarray
    """Its sentences' lengths."""


class Layout:
    """The book's buckets placed on the timeline, as far as finished buckets reach.

    A bucket's place depends on every bucket before it, so the layout grows from the
    start: ``extend`` places buckets while their segments exist. The timeline of a
    finished job is its complete layout; the encoder's pieces (``synth/finish``)
    are cut from a partial one while the rest is synthesised.
    """

    def __init__(self, folder: Path, manifest: Manifest) -> None:
        self.folder = folder
        self.manifest = manifest
        self.placed: list[Placed] = []
        self.end = 0
        """The first sample after the last placed bucket."""
        self._sentence_gap = round(manifest.silences["sentence"] * manifest.sample_rate)

    @property
    def complete(self) -> bool:
        return len(self.placed) == len(self.manifest.buckets)

    def extend(self, done: Callable[[str], bool] | None = None) -> int:
        """Place the next buckets while ``done(hash)`` (default: all must be); how many."""
        buckets = self.manifest.buckets
        added = 0
        while len(self.placed) < len(buckets):
            index = len(self.placed)
            bucket = buckets[index]
            if done is not None and not done(bucket.hash):
                break
            lengths = segment_lengths(self.folder, bucket.hash)
            if lengths is None:
                raise JobError(
                    f"bucket {bucket.id} has no audio in {self.folder}",
                    hint="rerun the synth command to finish the job",
                )
            gap = _gap(self.manifest, buckets[index - 1] if index else None, bucket)
            start = self.end + gap
            end = start + int(lengths.sum()) + self._sentence_gap * (len(lengths) - 1)
            self.placed.append(Placed(index, start, end, gap, lengths))
            self.end = end
            added += 1
        return added

    def chapter_starts(self) -> list[tuple[int, Placed]]:
        """(chapter key, its first placed bucket) for each chapter begun so far."""
        starts: list[tuple[int, Placed]] = []
        buckets = self.manifest.buckets
        for placed in self.placed:
            chapter = buckets[placed.index].chapter
            if not starts or buckets[starts[-1][1].index].chapter != chapter:
                starts.append((chapter, placed))
        return starts

    def timeline(self) -> Timeline:
        """Chapter marks and length of the placed buckets (all of them: the book's)."""
        starts = self.chapter_starts()
        marks = [
            ChapterMark(
                index=self.manifest.chapters[chapter].index,
                title=self.manifest.chapter_title(chapter),
                start=placed.start,
                end=starts[i + 1][1].start if i + 1 < len(starts) else self.end,
            )
            for i, (chapter, placed) in enumerate(starts)
        ]
        return Timeline(sample_rate=self.manifest.sample_rate, total=self.end, chapters=marks)

    def span(self, first: int, last: int, *, block: int = 1 << 16) -> Iterator[np.ndarray]:
        """int16 PCM of timeline samples ``[first, last)``, which must lie in the layout.

        Reads only the segments that overlap the span: a piece of a long book costs
        its own length, not the book's.
        """
        pos = first
        for placed in self.placed:
            if placed.end <= first:
                continue
            if placed.start - placed.gap >= last:
                break
            for at, chunk in self._chunks(placed, block):
                lo, hi = max(at, pos), min(at + len(chunk), last)
                if hi > lo:
                    yield chunk[lo - at : hi - at]
                    pos = hi
        while pos < last:  # only past the last bucket, which spans never reach
            n = min(last - pos, block)
            yield np.zeros(n, np.int16)
            pos += n

    def _chunks(self, placed: Placed, block: int) -> Iterator[tuple[int, np.ndarray]]:
        """(timeline sample, PCM) pieces of one bucket: its pause, sentences and gaps."""
        at = placed.start - placed.gap
        while at < placed.start:  # long pauses in blocks, not one big array
            n = min(placed.start - at, block)
            yield at, np.zeros(n, np.int16)
            at += n
        bucket = self.manifest.buckets[placed.index]
        segment = read_segment(self.folder, bucket.hash)
        if segment is None:
            raise JobError(
                f"segment {bucket.hash} in {self.folder} is missing or damaged",
                hint="rerun the synth command: it makes missing and damaged segments again",
            )
        pcm = _scaled(segment.pcm, self.manifest.volume)
        gap = np.zeros(self._sentence_gap, np.int16)
        offset = 0
        for i, length in enumerate(placed.lengths):
            if i:
                yield at, gap
                at += len(gap)
            yield at, pcm[offset : offset + int(length)]
            at += int(length)
            offset += int(length)


def _scaled(pcm: np.ndarray, volume: float) -> np.ndarray:
    if volume == 1.0:
        return pcm
    return np.clip(np.rint(pcm.astype(np.float32) * volume), -32767, 32767).astype(np.int16)


def build_timeline(folder: Path, manifest: Manifest) -> Timeline:
    """Chapter marks and length from the segments' sentence lengths (their audio stays on disk)."""
    layout = Layout(folder, manifest)
    layout.extend()
    return layout.timeline()


def stream_pcm(folder: Path, manifest: Manifest, *, block: int = 1 << 16) -> Iterator[np.ndarray]:
    """int16 PCM of the whole job in order, silences included, one bucket at a time."""
    sentence_gap = np.zeros(round(manifest.silences["sentence"] * manifest.sample_rate), np.int16)
    prev = None
    buckets = manifest.buckets
    segments = iter_segments(folder, [b.hash for b in buckets])
    for bucket, segment in zip(buckets, segments, strict=True):
        gap = _gap(manifest, prev, bucket)
        while gap > 0:  # long pauses in blocks, not one big array
            n = min(gap, block)
            yield np.zeros(n, np.int16)
            gap -= n
        pcm = _scaled(segment.pcm, manifest.volume)
        offset = 0
        for i, length in enumerate(segment.lengths):
            if i:
                yield sentence_gap
            yield pcm[offset : offset + int(length)]
            offset += int(length)
        prev = bucket


@contextlib.contextmanager
def open_source(path: Path) -> Iterator[Source]:
    """What ``convert`` re-encodes: a job folder (locked while in use) or an audio file."""
    if not path.is_dir():
        with open_file(path) as source:
            yield source
        return
    if not (path / MANIFEST).is_file():
        raise InputError(f"{path} is a folder but not a voicekit job folder (no {MANIFEST})")
    with Job.open(path) as job:  # the lock: no synth run may change it meanwhile
        yield job_source(path, job.read_manifest())


def job_source(folder: Path, manifest: Manifest) -> Source:
    name = folder.name.removesuffix(JOB_SUFFIX)
    return Source(
        path=folder,
        timeline=build_timeline(folder, manifest),
        pcm=lambda: stream_pcm(folder, manifest),
        meta=dict(manifest.meta),
        cover=job_cover(folder, manifest.cover),
        name=Path(name).stem if Path(name).suffix in EXTENSIONS.values() else name,
        # the run's own --loudness (a manifest from before it existed: off, as it was made)
        loudness=float(manifest.settings.get("loudness", 0.0)) or None,
        true_peak=float(manifest.settings.get("true_peak", -3.0)),
    )


def job_cover(folder: Path, name: str | None) -> Path | None:
    """The manifest's cover file, which must lie inside the job folder (links resolved).

    A manifest is a file anyone can edit: a cover named ``../x`` or ``/home/...`` would
    otherwise embed a file from anywhere into the audiobook.
    """
    if not name:
        return None
    path = folder / name
    if not path.resolve().is_relative_to(folder.resolve()):
        raise InputError(
            f"{folder}: the manifest's cover {name} is outside the job folder",
            hint=f"fix or remove the cover in {MANIFEST}",
        )
    return path if path.is_file() else None
