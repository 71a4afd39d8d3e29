"""Units of work: whole books when there are many, bucket ranges when a few big books
would leave workers idle.

A batch of many books keeps every worker busy with whole books, and a whole book is
the cheapest unit: one plan, one job folder, one encode, nothing to join. When a book
is more than a fair share of the batch (the batch's words over its workers; a lone
book on two workers is), waiting for it alone would leave the other workers idle at
the end, so it is made in ranges instead: the driver has a worker plan it (a
``PlanUnit``), cuts the buckets its job folder lacks into ``RangeUnit`` s
(synth/ranges.py), hands them to any workers, and once every range is done gives the
book itself (its ``BookUnit``, now with a ``Split``) to one worker, which assembles
and encodes it from the finished segments, as a resumed local run would.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from voicekit.synth.job import Job
from voicekit.synth.options import RunOptions, default_job_dir
from voicekit.text.model import Book

RANGES_PER_WORKER = 2
"""A split book is cut into this many ranges for each worker's share it has: a worker
that finishes early takes a share of another's (a loaded node, a denser chapter), and a
lost range costs less. More would cost a start-up each (the plan is kept per worker,
but a CPU worker with several processes starts them per range)."""


@dataclass
class BookUnit:
    """One book of the batch, as the driver hands it to a worker."""

    key: str
    """The input as given: the summary's name for the book."""
    book: Book
    output: Path
    options: RunOptions
    attempts: int = 0
    lock_waits: int = 0
    shares: int = 1
    """Workers' worth of the batch this book is; 2 or more: it is made in ranges."""
    split: Split | None = None
    """Set when it was made in ranges: this unit then only assembles and encodes it."""

    @property
    def job_dir(self) -> Path:
        """The book's job folder, as the driver sees it (and, shared, every worker)."""
        return self.options.job_dir or default_job_dir(self.output)


@dataclass
class PlanUnit:
    """Plan a book to split: its buckets, and how many sentences a worker's call takes."""

    book: BookUnit
    attempts: int = 0
    lock_waits: int = 0

    @property
    def key(self) -> str:
        return self.book.key


@dataclass
class RangeUnit:
    """The buckets ``[start, stop)`` of a split book's plan (synth/ranges.py)."""

    split: Split
    index: int
    start: int
    stop: int
    attempts: int = 0
    lock_waits: int = 0

    @property
    def key(self) -> str:
        return self.split.book.key

    @property
    def label(self) -> str:
        return f"{self.index + 1}/{len(self.split.ranges)}"


Unit = BookUnit | PlanUnit | RangeUnit


@dataclass
class Split:
    """A book made in ranges, as the driver tracks it."""

    book: BookUnit
    job: Job | None
    """The driver's shared hold on the job folder while ranges write into it."""
    fingerprint: str
    """The planning worker's: ranges go to workers whose buckets hash the same."""
    places: Counter[str]
    """How often each bucket text occurs in the book."""
    restart: bool = False
    """The batch was told to restart: a range's own temp job starts empty too."""
    ranges: list[RangeUnit] = field(default_factory=list)
    left: set[int] = field(default_factory=set)
    """Ranges not done yet."""
    made: set[str] = field(default_factory=set)
    """Bucket texts the ranges synthesized."""
    audio_seconds: float = 0.0
    """Speech the ranges made (the book's pauses come with assembly)."""
    synth_seconds: float = 0.0
    nodes: list[str] = field(default_factory=list)
    returned_bytes: int = 0
    began: float = field(default_factory=time.monotonic)
    failed: bool = False

    def worked_on(self, node: str) -> None:
        if node and node not in self.nodes:
            self.nodes.append(node)

    def release(self) -> None:
        """Let go of the job folder: the finishing run takes it alone."""
        if self.job is not None:
            self.job.close()
            self.job = None


def shares(sizes: list[int], workers: int) -> list[int]:
    """Workers' worth of each book: its size over a fair share (the batch's over ``workers``).

    1 for each book of a batch of many like-sized books; a book alone on N workers is N;
    a book far bigger than the rest of its batch gets as many as its size calls for.
    """
    total = sum(max(1, s) for s in sizes)
    fair = total / max(1, workers)
    return [max(1, min(workers, math.ceil(max(1, s) / fair - 1e-9))) for s in sizes]
