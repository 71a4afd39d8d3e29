"""The worker: one Ray actor per GPU (or per group of CPU cores), one voice; whole books,
or the parts of a book split into bucket ranges (cluster/units.py).

Why actors and not Ray Data's ``map_batches``: the unit of work is a whole book, which
makes a file of its own (minutes to hours of audio, a job folder to resume from), or a
range of one book's buckets that ends in that book's job folder, not a row of a
dataset. An actor keeps the voice and its backend (CUDA graphs included) loaded
across books, answers progress queries while it works (a threaded actor), and the driver
decides what a lost actor means (retry the book elsewhere, resuming from its job folder).
Ray Data would add a dataset layer, block batching and its own retry policy for no gain
at book granularity.

The actor class is plain Python; ``runner`` wraps it with ``ray.remote`` at run time, so
this module imports without Ray.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from voicekit.cluster import readalong
from voicekit.errors import JobError, VoicekitError
from voicekit.settings import SynthSettings
from voicekit.synth.job import SEGMENTS, Job
from voicekit.synth.lanes import runs_in_lanes
from voicekit.synth.options import RunOptions, default_job_dir
from voicekit.synth.pipeline import Synthesizer
from voicekit.synth.plan import Plan
from voicekit.synth.progress import Progress, RunResult
from voicekit.synth.ranges import range_buckets
from voicekit.system.devices import choose_device, parse_device
from voicekit.system.fsutil import write_bytes
from voicekit.text.model import Book

SCRATCH = "voicekit-cluster"
"""Node-local folder (under the temp dir) for books made without a shared filesystem."""
PLANS_KEPT = 1
"""Plans a worker keeps: the ranges of one book, and its finish, often come one after
another to the same worker, and a big book takes seconds to plan."""
_STARTING = {"phase": "plan", "buckets_done": 0, "buckets_total": 0, "audio_seconds": 0.0}
"""What a worker is doing before a unit's first event: planning (or finding the plan)."""


def scratch_dir(output: Path) -> Path:
    """Where a book is made on a node that cannot see its output folder.

    Named after the output, so a worker on the same node after a lost one (or a rerun
    after the driver was killed) finds the job folder and resumes it.
    """
    key = hashlib.sha256(str(output).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / SCRATCH / key


class BookWorker:
    """Holds one ``Synthesizer`` (the voice loads once) and makes books one at a time."""

    def __init__(self, settings: SynthSettings, *, gpu: bool = False,
                 trace_dir: str | None = None) -> None:  # fmt: skip
        import ray

        if gpu and settings.device == "auto":  # one actor per GPU: Ray set CUDA_VISIBLE_DEVICES
            settings = settings.replace(device="cuda")
        self.choice = choose_device(settings.device, settings.backend)
        self.synth = Synthesizer(settings, choice=self.choice)
        self.node = ray.get_runtime_context().get_node_id()
        self.host = socket.gethostname()
        self.trace = Path(trace_dir) / f"{os.getpid()}.log" if trace_dir else None
        self.fingerprint = self.synth.fingerprint()
        self._lock = threading.Lock()
        self._now: dict[str, Any] = {}
        self._totals = {"books": 0, "buckets": 0, "audio_seconds": 0.0, "synth_seconds": 0.0}
        self._plans: dict[str, Plan] = {}
        self._per_call: int | None = None

    def info(self) -> dict[str, Any]:
        """Who this worker is: node, host, process, device, backend, and how it hashes."""
        return {"node": self.node, "host": self.host, "pid": os.getpid(),
                "device": self.choice.device, "backend": self.choice.backend,
                "fingerprint": self.fingerprint}  # fmt: skip

    def sees(self, probe: str, token: str) -> bool:
        """Does this node see the driver's output folder (the probe file it wrote)?"""
        try:
            return Path(probe).read_text(encoding="utf-8") == token
        except OSError:
            return False

    def snapshot(self) -> dict[str, Any]:
        """The book in hand and this worker's totals (answered while a book runs)."""
        with self._lock:
            return {**self.info(), "now": dict(self._now), **self._totals}

    def run_book(
        self, key: str, book: Book, output: str, options: RunOptions, shared: bool,
        segments: list[Any] | None = None, counted: float = 0.0, readalong_here: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """Make one book; its row for the batch summary (and its files without shared storage).

        A book that fails for its own reasons is a row with status "failed", not an
        exception: only a lost worker makes the driver retry. ``segments``: object refs
        of the finished segments of a book made in ranges, which this worker's job
        folder gets first (it does not see the book's own). ``counted``: audio seconds
        of the book this worker's totals have had already (its ranges').
        ``readalong_here``: a shared worker writes the read-along at its path (else it
        makes it in scratch and sends it back: cluster/readalong.py).
        """
        target = Path(output)
        scratch = None if shared else scratch_dir(target)
        made_readalong: Path | None = None
        if scratch is not None:  # made here, the files go back through the object store
            scratch.mkdir(parents=True, exist_ok=True)
            target = scratch / "out" / target.name
            target.parent.mkdir(exist_ok=True)
            options = replace(options, job_dir=scratch / "job", force=True)
        row: dict[str, Any] = {"node": self.node, "host": self.host, "pid": os.getpid()}
        started = time.monotonic()
        try:
            if options.readalong is not None and not (shared and readalong_here):
                options, made_readalong = readalong.in_scratch(options, scratch_dir(Path(output)))
            if segments and options.job_dir is not None:
                _receive(options.job_dir, segments)
            row.update(self._make(key, book, target, options, counted))
            if made_readalong is not None and made_readalong.exists():
                # not there: the output was already complete (a stopped run), as locally
                row["readalong"] = readalong.take_back(made_readalong)
            if scratch is not None:
                row["files"] = _collect(target.parent)
                shutil.rmtree(scratch, ignore_errors=True)
        except Exception as exc:
            row.update(_failure(exc))
        finally:
            with self._lock:
                self._now = {}
        row.setdefault("wall_seconds", round(time.monotonic() - started, 3))
        return row

    def plan_book(self, key: str, book: Book) -> dict[str, Any]:
        """A book to split: its buckets (hash, sentences) in book order, the sentences one
        call of this worker takes, and its fingerprint (cluster/splits.open_split)."""
        try:
            with self._lock:
                self._now = {"book": key, **_STARTING}
            plan = self._plan(key, book)
            return {
                "status": "done",
                "fingerprint": plan.fingerprint,
                "per_call": self._sentences_per_call(),
                "buckets": [(b.hash, len(b.sentences)) for b in plan.buckets],
            }
        except Exception as exc:
            return _failure(exc)
        finally:
            with self._lock:
                self._now = {}

    def run_range(
        self, key: str, book: Book, output: str, options: RunOptions, start: int, stop: int,
        label: str, shared: bool, restart: bool,
    ) -> dict[str, Any]:  # fmt: skip
        """Make the buckets ``[start, stop)`` of a split book; its segments only.

        Shared storage: into the book's job folder, beside the book's other ranges.
        Otherwise into a temp job of this range's own on this node (a retry here finds
        what a lost try made), whose segments go back to the driver in the answer.
        """
        target = Path(output)
        folder = options.job_dir or default_job_dir(target)
        if not shared:
            folder = scratch_dir(target) / f"range-{start}"
            folder.parent.mkdir(parents=True, exist_ok=True)
        row: dict[str, Any] = {"node": self.node, "host": self.host, "pid": os.getpid()}
        started = time.monotonic()
        with self._lock:
            self._now = {"book": key, "range": label, **_STARTING}
        try:
            plan = self._plan(key, book)
            events = self.synth.make_range(plan, target, start, stop, folder, shared=shared,
                                           restart=restart and not shared)  # fmt: skip
            run = self._follow(key, events, label)
            hashes = {b.id: b.hash for b in plan.buckets[start:stop]}
            row.update(status="done", made=[hashes[i] for i in run.made],
                       resumed=run.resumed or 0, audio_seconds=round(run.new_audio, 3),
                       synth_seconds=round(run.seconds, 3))  # fmt: skip
            with self._lock:  # a range's speech counts now; its book's pauses with the book
                self._totals["audio_seconds"] += run.new_audio
                self._totals["synth_seconds"] += run.seconds
            if not shared:
                mine = [b.hash for b in range_buckets(plan.buckets, start, stop)]
                row["segments"] = _segments(folder, mine)
                _drop_job(folder)
        except Exception as exc:
            row.update(_failure(exc))
        finally:
            with self._lock:
                self._now = {}
        row["wall_seconds"] = round(time.monotonic() - started, 3)
        return row

    def _plan(self, key: str, book: Book) -> Plan:
        plan = self._plans.get(key)
        if plan is None:
            plan = self.synth.plan(book)
            while len(self._plans) >= PLANS_KEPT:
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = plan
        return plan

    def _sentences_per_call(self) -> int:
        """What one call of this worker's backend takes (ranges are cut where calls begin).

        The backend says, after fitting its batch to the memory; on a worker that runs
        synthesis processes it is loaded only to ask, then closed again.
        """
        if self._per_call is None:
            self._per_call = max(1, self.synth.backend().batch_sentences)
            choice = self.choice
            if (
                self.synth.settings.workers > 1
                and not parse_device(choice.device).is_cuda
                and not runs_in_lanes(choice.backend, choice.device)
            ):
                self.synth.close()  # its processes load their own
        return self._per_call

    def _make(self, key: str, book: Book, output: Path, options: RunOptions,
              counted: float = 0.0) -> dict[str, Any]:  # fmt: skip
        plan = self._plan(key, book)
        self._plans.pop(key, None)  # made: its ranges, if any, are done
        with self._lock:
            self._now = {"book": key, **_STARTING, "buckets_total": len(plan.buckets)}
        run = self._follow(key, self.synth.run(plan, output, options), counted=counted)
        result = run.result
        assert result is not None
        with self._lock:
            self._totals["books"] += 1
            self._totals["audio_seconds"] += max(0.0, result.audio_seconds - counted)
            self._totals["synth_seconds"] += result.synth_seconds
        return {
            "status": "done",
            "audio_seconds": result.audio_seconds,
            "wall_seconds": result.wall_seconds,
            "synth_seconds": result.synth_seconds,
            "rtf": result.rtf,
            "buckets": result.buckets,
            "synthesized": result.buckets_synthesized,
            "resumed": result.buckets_resumed,
            "device": result.device,
            "backend": result.backend,
            # what a local run's view prints as it goes (a read-along not from the book's pages)
            **({"warnings": run.warnings} if run.warnings else {}),
        }

    def _follow(self, key: str, events: Iterator[Progress], label: str | None = None,
                counted: float = 0.0) -> _Run:  # fmt: skip
        """Run ``events`` to the end, telling the driver's queries where it stands.

        ``counted``: audio of the book the totals have already (its ranges'), left out
        of what is in hand, so the cluster's audio figure does not count it twice.
        """
        run = _Run()
        trace = self.trace.open("a", encoding="utf-8") if self.trace else None
        try:
            for event in events:
                run.seen(event)
                if event.phase == "synth" and event.bucket_id is not None:
                    with self._lock:
                        self._totals["buckets"] += 1
                    if trace is not None:  # tests count buckets made, across lost workers
                        trace.write(f"{key}\t{event.bucket_id}\n")
                        trace.flush()
                with self._lock:
                    self._now.update(
                        book=key, phase=event.phase, buckets_done=event.buckets_done,
                        buckets_total=event.buckets_total,
                        audio_seconds=max(0.0, event.audio_seconds - counted),
                        peak_gpu_mb=event.memory.peak_gpu_mb if event.memory else None,
                        **({"range": label} if label else {}),
                    )  # fmt: skip
        finally:
            if trace is not None:
                trace.close()
        return run


@dataclass
class _Run:
    """What one run's events told: its result (a book's), or what it made (a range's)."""

    result: RunResult | None = None
    made: list[str] = field(default_factory=list)
    """Ids of the buckets it synthesized."""
    resumed: int | None = None
    first_audio: float | None = None
    audio: float = 0.0
    began: float | None = None
    ended: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def seen(self, event: Progress) -> None:
        if self.began is None:  # a range's first event comes before its synthesis
            self.began, self.first_audio = time.perf_counter(), event.audio_seconds
            self.resumed = event.buckets_resumed
        if event.phase == "synth" and event.bucket_id is not None:
            self.made.append(event.bucket_id)
        self.audio, self.ended = event.audio_seconds, time.perf_counter()
        if event.phase != "load":  # a load's are the worker's device notes, not the book's
            self.warnings += [w for w in event.warnings if w not in self.warnings]
        if event.result is not None:
            self.result = event.result

    @property
    def new_audio(self) -> float:
        """Speech made by this run (a range's events count speech only)."""
        return max(0.0, self.audio - (self.first_audio or 0.0))

    @property
    def seconds(self) -> float:
        return self.ended - self.began if self.began is not None else 0.0


def _collect(folder: Path) -> dict[str, bytes]:
    """Every file of a finished book (audio, playlist, captions), by path under ``folder``."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


def _failure(exc: Exception) -> dict[str, Any]:
    """The row of a unit that failed for its own reasons (the worker lives on)."""
    if isinstance(exc, VoicekitError):
        # a lost worker's process may live on a moment, holding the job's lock
        busy = isinstance(exc, JobError) and "in use" in exc.message
        return {"status": "failed", "error": exc.message, "hint": exc.hint, "busy": busy}
    # a bug met by one book must not cost the rest either
    return {"status": "failed", "error": f"unexpected {type(exc).__name__}: {exc}"}


def _segments(folder: Path, hashes: list[str]) -> dict[str, bytes]:
    """A range's finished segments, to send back to the driver."""
    out: dict[str, bytes] = {}
    for digest in hashes:
        path = folder / SEGMENTS / f"{digest}.npz"
        if path.is_file():
            out[digest] = path.read_bytes()
    return out


def _drop_job(folder: Path) -> None:
    """A range's temp job, once its segments are on their way: gone, and its node's
    folder for the book too when nothing else is left in it."""
    with Job.open(folder) as job:
        job.remove()
    with contextlib.suppress(OSError):
        folder.parent.rmdir()


def _receive(folder: Path, refs: list[Any]) -> None:
    """The segments of a book made in ranges, into this worker's job folder for it."""
    import ray

    with Job.open(folder) as job:
        for ref in refs:  # one object at a time: never the whole book's PCM in memory
            for digest, data in ray.get(ref).items():
                write_bytes(job.segment_path(digest), data)
