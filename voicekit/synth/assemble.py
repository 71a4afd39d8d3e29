"""From a job folder to one PCM stream with its chapter marks, never all in memory.

Pauses (sentence, paragraph, chapter) and ``--volume`` are applied here, not in the
segments, so changing them needs no re-synthesis. :func:`open_source` offers a
finished job to ``formats.convert`` like any audio file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from voicekit.errors import InputError, JobError
from voicekit.formats.convert import Source, open_file
from voicekit.formats.output import EXTENSIONS
from voicekit.formats.timeline import ChapterMark, Timeline
from voicekit.synth.job import MANIFEST, Job, iter_segments, segment_lengths
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


def build_timeline(folder: Path, manifest: Manifest) -> Timeline:
    """Chapter marks and length from the segments' sentence lengths (their audio stays on disk)."""
    sentence_gap = round(manifest.silences["sentence"] * manifest.sample_rate)
    pos = 0
    starts: list[tuple[int, int]] = []  # (chapter key, start sample)
    prev = None
    for bucket in manifest.buckets:
        lengths = segment_lengths(folder, bucket.hash)
        if lengths is None:
            raise JobError(
                f"bucket {bucket.id} has no audio in {folder}",
                hint="rerun the synth command to finish the job",
            )
        pos += _gap(manifest, prev, bucket)
        if prev is None or bucket.chapter != prev.chapter:
            starts.append((bucket.chapter, pos))
        pos += int(lengths.sum()) + sentence_gap * (len(lengths) - 1)
        prev = bucket
    marks = [
        ChapterMark(
            index=manifest.chapters[chapter].index,
            title=manifest.chapter_title(chapter),
            start=start,
            end=starts[i + 1][1] if i + 1 < len(starts) else pos,
        )
        for i, (chapter, start) in enumerate(starts)
    ]
    return Timeline(sample_rate=manifest.sample_rate, total=pos, chapters=marks)


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
        pcm = segment.pcm
        if manifest.volume != 1.0:
            scaled = np.rint(pcm.astype(np.float32) * manifest.volume)
            pcm = np.clip(scaled, -32767, 32767).astype(np.int16)
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
