"""The driver's side of a book made in ranges: its job folder, before, during and after.

The job folder is the book's own (``--work-dir`` or beside the output, as a local run
would use), on the driver's filesystem. Before the ranges the driver claims it alone
(restarting it if asked), reads which segments it holds and cuts the rest into ranges;
then holds it shared while the ranges write their segments into it: workers that see
it write them there themselves, others send them back, and the driver writes them.
Once every range is done it lets go, and the finishing run takes the folder alone
(synth/job.py: the two lock modes). A driver killed meanwhile leaves the segments;
the same command run again plans the book again and makes only what is missing.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise
from pathlib import Path
from typing import Any

from voicekit.cluster.units import BookUnit, RangeUnit, Split
from voicekit.synth.job import SEGMENTS, Job, completed_output
from voicekit.synth.ranges import split_ranges
from voicekit.system.fsutil import write_bytes

CHUNK_BYTES = 64 * 2**20
"""Segments sent to a finishing worker that does not see the job folder go in objects
of about this size, so neither side holds a whole book's PCM at once."""


def open_split(unit: BookUnit, plan: dict[str, Any], parts: int) -> Split | None:
    """Cut what the book's job folder lacks into up to ``parts`` ranges; None: make it whole.

    ``plan`` is a worker's answer to ``plan_book``: the buckets in book order (hash,
    sentences), its fingerprint and the sentences one of its calls takes. Whole: fewer
    than two calls are left, or a run stopped after writing this very output (the
    whole-book run just tidies up). JobError: the folder is not usable (in use, not a
    job's); the caller then makes the book whole, and its worker reports the cause.
    """
    opts = unit.options
    folder = unit.job_dir
    if not (opts.force or opts.restart) and completed_output(folder, unit.output):
        return None
    buckets: list[tuple[str, int]] = [(h, n) for h, n in plan["buckets"]]
    job = Job.open(folder, restart=opts.restart)
    try:
        done = job.finished(list(dict.fromkeys(h for h, _ in buckets)))
        firsts: list[int] = []  # plan index of each bucket text still to make
        seen: set[str] = set()
        for i, (digest, _) in enumerate(buckets):
            if digest not in seen:
                seen.add(digest)
                if digest not in done:
                    firsts.append(i)
        starts = split_ranges([buckets[i][1] for i in firsts], parts, int(plan["per_call"]))
        if len(starts) < 2:
            job.close()
            return None
        job.share()
    except BaseException:
        job.close()
        raise
    split = Split(unit, job, str(plan["fingerprint"]), Counter(h for h, _ in buckets),
                  restart=opts.restart)  # fmt: skip
    # a range starts at its first bucket to make; the first at 0 (before it: nothing to make)
    bounds = [0, *(firsts[s] for s in starts[1:]), len(buckets)]
    split.ranges = [RangeUnit(split, k, a, b) for k, (a, b) in enumerate(pairwise(bounds))]
    split.left = set(range(len(split.ranges)))
    unit.split = split
    unit.options = replace(opts, restart=False)  # restarted once, here; never again
    return split


def store_segments(split: Split, segments: dict[str, bytes]) -> int:
    """Write segments a range sent back into the book's job folder; their bytes.

    Not checked here: the finishing run checks every segment (a damaged one is made
    again), as any resumed run does.
    """
    assert split.job is not None, "segments arrived after the ranges were done"
    for digest, data in segments.items():
        write_bytes(split.job.segment_path(digest), data)
    return sum(len(d) for d in segments.values())


def segment_chunks(folder: Path) -> Iterator[dict[str, bytes]]:
    """Every segment in the job ``folder``, by hash, in objects of about CHUNK_BYTES."""
    chunk: dict[str, bytes] = {}
    size = 0
    for path in sorted((folder / SEGMENTS).glob("*.npz")):
        chunk[path.stem] = path.read_bytes()
        size += len(chunk[path.stem])
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = {}, 0
    if chunk:
        yield chunk


def remove_job(unit: BookUnit) -> None:
    """The book is written (by a worker that did not see the folder): its job goes.

    Kept with ``--keep-work``: a later run then resumes from its segments.
    """
    if unit.options.keep_work:
        return
    with contextlib.suppress(Exception), Job.open(unit.job_dir) as job:
        job.remove()  # tidying only: a folder in use or gone is left as it is


def row(split: Split, finished: dict[str, Any]) -> dict[str, Any]:
    """The book's summary row: the finishing run's, with what its ranges did added."""
    out = dict(finished)
    if out.get("status") != "done":
        return out
    made_places = sum(split.places[h] for h in split.made)
    out["synthesized"] = int(out.get("synthesized", 0)) + len(split.made)
    # the finishing run found the ranges' segments: resumed are those from before the batch
    out["resumed"] = max(0, int(out.get("resumed", 0)) - made_places)
    out["synth_seconds"] = round(float(out.get("synth_seconds") or 0.0) + split.synth_seconds, 3)
    out["wall_seconds"] = round(time.monotonic() - split.began, 3)
    if split.audio_seconds:  # synthesis per second of speech, over all its workers
        out["rtf"] = round(out["synth_seconds"] / split.audio_seconds, 4)
    out["ranges"] = len(split.ranges)
    node = str(out.get("node", ""))
    out["nodes"] = [*split.nodes, *([node] if node and node not in split.nodes else [])]
    if split.returned_bytes:
        out["returned_bytes"] = int(out.get("returned_bytes", 0)) + split.returned_bytes
    return out
