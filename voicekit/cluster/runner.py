"""The driver: place one worker per GPU (or per group of CPU cores), hand out the units of
work (cluster/units.py: whole books, or a big book's bucket ranges and then its finish),
retry the units of lost workers, and report where the batch stands.

Storage: every worker checks whether it sees the driver's output folder (a probe file
the driver writes there). One that does writes the book and its job folder in place,
so a book retried elsewhere resumes from its finished buckets. One that does not makes
the book in node-local scratch and sends the finished files back through Ray's object
store; the driver writes them. A range follows the same rule: a worker that sees the
book's job folder writes its segments there, one that does not sends them back and the
driver writes them there (cluster/splits.py); a finishing worker that does not see the
folder gets them all through the object store before it assembles the book. A book's
read-along EPUB follows the book (cluster/readalong.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from voicekit.cluster import readalong, splits
from voicekit.cluster.connect import import_ray
from voicekit.cluster.state import ClusterState
from voicekit.cluster.units import RANGES_PER_WORKER, BookUnit, PlanUnit, RangeUnit, Unit, shares
from voicekit.cluster.worker import BookWorker
from voicekit.errors import InputError, JobError, SynthesisError, VoicekitError
from voicekit.settings import SynthSettings
from voicekit.system.fsutil import write_bytes

Storage = Literal["auto", "shared", "object-store"]
PROBE = ".voicekit-cluster-probe"
POLL_SECONDS = 0.5
LOCK_WAIT_SECONDS = 2.0
LOCK_WAITS = 30
"""A lost worker's process (a node cut off, not yet dead) may hold its book's job lock:
the retry waits for it, up to a minute, then reports the book as failed."""
WORKERS_ENV = "VOICEKIT_CLUSTER_WORKERS"
"""At most this many workers (default: one per GPU, else one per node's cores)."""
CPUS_ENV = "VOICEKIT_CLUSTER_CPUS"
"""CPU cores per worker on CPU nodes (default: all the node's cores, one worker a node)."""
STORAGE_ENV = "VOICEKIT_CLUSTER_STORAGE"
"""auto (probe each node), shared, or object-store (send every book back to the driver)."""
SPLIT_ENV = "VOICEKIT_CLUSTER_SPLIT"
"""0: whole books only, never bucket ranges (default 1: split books a worker would wait on)."""
START_WAIT_SECONDS = 60.0
"""Ranges wait (this long at most) for every worker placed at the start to be ready: a
book is cut into ranges for that many workers, and the first one ready would otherwise
take the ranges meant for the others."""

__all__ = ["BookUnit", "ClusterRunner", "ClusterState"]  # BookUnit: the CLI's, the tests'


@dataclass
class Slot:
    """A worker the driver placed: its actor, where it runs, and what it is doing."""

    actor: Any
    name: str
    info: dict[str, Any] = field(default_factory=dict)
    shared: bool = True
    unit: Unit | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)
    asked: Any = None
    """The snapshot query not answered yet."""


class ClusterRunner:
    """Runs a batch of books on the cluster ``connect`` joined."""

    def __init__(
        self,
        settings: SynthSettings,
        *,
        storage: Storage | None = None,
        workers: int | None = None,
        cpus_per_worker: int | None = None,
        max_attempts: int = 3,
        trace_dir: Path | None = None,
        split: bool | None = None,
    ) -> None:
        self.ray = import_ray()
        self.settings = settings
        self.storage: Storage = storage or _env_storage()
        self.max_workers = workers or _env_int(WORKERS_ENV)
        self.cpus_per_worker = cpus_per_worker or _env_int(CPUS_ENV)
        self.max_attempts = max_attempts
        self.trace_dir = str(trace_dir) if trace_dir else None
        self.split = _env_split() if split is None else split
        self.slots: list[Slot] = []
        self._made = 0
        self._start_failures = 0
        self._queue: deque[Unit] = deque()
        self._later: list[tuple[float, Unit]] = []  # units whose job is locked a moment longer
        self._waiting: dict[Any, tuple[str, Slot]] = {}  # ref -> ("ready" | "work", slot)
        self._gate = 0.0
        self._probed = Path()
        """The output folder the probe is in: what a worker that sees it sees."""

    # --- placement ---------------------------------------------------------------
    def placements(self) -> list[dict[str, Any]]:
        """One entry per worker to start: node, GPUs and CPUs it takes."""
        out: list[dict[str, Any]] = []
        for node in self.ray.nodes():
            if not node.get("Alive"):
                continue
            res = node.get("Resources", {})
            gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 0))
            if gpus:  # one actor per GPU, the torch backend (when the settings leave it auto)
                out += [{"node": node["NodeID"], "gpus": 1, "cpus": 0}] * gpus
            elif cpus:
                per = min(self.cpus_per_worker or cpus, cpus)
                out += [{"node": node["NodeID"], "gpus": 0, "cpus": per}] * (cpus // per)
        # spread: take one worker from each node in turn before a node's second
        by_node: dict[str, list[dict[str, Any]]] = {}
        for p in out:
            by_node.setdefault(p["node"], []).append(p)
        spread = [p for row in _zip_longest(*by_node.values()) for p in row]
        return spread[: self.max_workers] if self.max_workers else spread

    def _start(self, place: dict[str, Any] | None) -> Slot:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._made += 1
        gpu = bool(place and place["gpus"])
        settings = self.settings
        if gpu and settings.backend == "auto":
            settings = settings.replace(backend="torch")
        elif not gpu and settings.workers == 0:
            # synthesis processes for the cores it holds (auto would count the whole node's);
            # threads stay the settings' own: with 0, one per process, the same bytes anywhere
            settings = settings.replace(workers=place["cpus"] if place else 1)
        options: dict[str, Any] = {
            # a threaded actor: progress queries are answered while a book runs
            "max_concurrency": 2,
            "num_gpus": 1 if gpu else 0,
            "num_cpus": place["cpus"] if place else 1,
        }
        if place:  # soft: a replacement may go elsewhere when the node is gone
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                place["node"], soft=True
            )
        actor = (
            self.ray.remote(BookWorker)
            .options(**options)
            .remote(settings, gpu=gpu, trace_dir=self.trace_dir)
        )
        return Slot(actor, f"worker-{self._made}")

    # --- the batch ---------------------------------------------------------------
    def run(self, units: list[BookUnit]) -> Iterator[ClusterState]:
        """Make every book; yields the batch's state about twice a second, then the last."""
        ray = self.ray
        state = ClusterState(books=len(units))
        if not units:
            state.finished = True
            yield state
            return
        for unit in units:
            readalong.prepare(unit)
        probe, token = self._write_probe(units)
        self._probed = probe.parent
        places = self.placements()
        if not places:
            raise InputError("the Ray cluster has no node with a CPU or GPU to run a worker")
        self._queue = deque(self._plan_units(units, len(places)))
        for place in places[: sum(u.shares for u in units)]:  # no more workers than shares
            slot = self._start(place)
            self.slots.append(slot)
            self._waiting[slot.actor.info.remote()] = ("ready", slot)
        self._gate = time.monotonic() + START_WAIT_SECONDS
        idle: list[Slot] = []
        last_poll = 0.0
        try:
            while self._queue or self._later or self._working():
                for due in [item for item in self._later if item[0] <= time.monotonic()]:
                    self._later.remove(due)
                    self._queue.append(due[1])
                self._hand_out(idle)
                ready, _ = ray.wait(list(self._waiting), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    kind, slot = self._waiting.pop(ref)
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        if kind == "ready":
                            self._failed_start(exc)
                        self._lost(slot, state)
                        continue
                    except ray.exceptions.RayError as exc:  # the unit's own, the worker lives
                        if kind == "ready":
                            raise
                        value = {"status": "failed", "error": _first_line(exc)}
                    if kind == "ready":
                        slot.info = value
                        slot.shared = self.storage == "shared" or (
                            self.storage == "auto"
                            and ray.get(slot.actor.sees.remote(str(probe), token))
                        )
                    else:
                        unit, slot.unit = slot.unit, None
                        assert unit is not None
                        self._answered(unit, value, state)
                    idle.append(slot)
                if time.monotonic() - last_poll >= POLL_SECONDS:
                    last_poll = time.monotonic()
                    state.workers = self._poll()
                    yield state
            self._poll(wait=5.0)  # the queries out, then fresh ones: the final totals
            state.workers = [{**w, "now": {}} for w in self._poll(wait=5.0)]
        finally:
            probe.unlink(missing_ok=True)
            for unit in units:  # a batch that stopped early lets go of its books' job folders
                if unit.split is not None:
                    unit.split.release()
            for slot in self.slots:
                ray.kill(slot.actor)
        state.finished = True
        yield state

    def _plan_units(self, units: list[BookUnit], workers: int) -> list[Unit]:
        """The first units: books to split are planned first, their ranges then go first."""
        if self.split:
            for unit, n in zip(units, shares([u.book.words for u in units], workers), strict=True):
                unit.shares = n
        return [*(PlanUnit(u) for u in units if u.shares > 1), *(u for u in units if u.shares < 2)]

    def _working(self) -> bool:
        return any(kind == "work" for kind, _ in self._waiting.values())

    # --- handing out ---------------------------------------------------------------
    def _hand_out(self, idle: list[Slot]) -> None:
        for slot in list(idle):
            unit = next((u for u in self._queue if self._may_take(slot, u)), None)
            if unit is None:
                continue
            self._queue.remove(unit)
            idle.remove(slot)
            unit.attempts += 1
            slot.unit = unit
            self._waiting[self._submit(slot, unit)] = ("work", slot)

    def _submit(self, slot: Slot, unit: Unit) -> Any:
        actor = slot.actor
        if isinstance(unit, PlanUnit):
            return actor.plan_book.remote(unit.key, unit.book.book)
        if isinstance(unit, RangeUnit):
            book, restart = unit.split.book, unit.split.restart and unit.attempts == 1
            return actor.run_range.remote(
                book.key, book.book, str(book.output), readalong.without_source(book.options),
                unit.start, unit.stop, unit.label, slot.shared, restart,
            )  # fmt: skip
        segments, counted = None, 0.0
        if unit.split is not None:  # the finish of a book made in ranges
            counted = unit.split.audio_seconds
            if not slot.shared:  # one object at a time, from the driver's job folder
                segments = [self.ray.put(c) for c in splits.segment_chunks(unit.job_dir)]
        here = readalong.in_place(unit.options, self._probed)
        return actor.run_book.remote(unit.key, unit.book, str(unit.output), unit.options,
                                     slot.shared, segments, counted, here)  # fmt: skip

    def _may_take(self, slot: Slot, unit: Unit) -> bool:
        """Whole books and plans go to any worker; a split book's ranges and its finish
        to a worker whose buckets hash as the planner's did (another backend would make
        other buckets), unless none is left; the finish to one that sees its job folder,
        where there is one (no segments to send)."""
        split = unit.split if isinstance(unit, (RangeUnit, BookUnit)) else None
        if split is None:
            return True
        if isinstance(unit, RangeUnit) and not self._gate_open():
            return False
        fingerprint = split.fingerprint  # a worker still starting (no info yet) may be alike
        alike = [s for s in self.slots if s.info.get("fingerprint", fingerprint) == fingerprint]
        if alike and slot not in alike:
            return False
        if isinstance(unit, BookUnit) and not slot.shared:
            return not any(s.info and s.shared for s in alike)
        return True

    def _gate_open(self) -> bool:
        return time.monotonic() >= self._gate or all(s.info for s in self.slots)

    # --- answers -------------------------------------------------------------------
    def _answered(self, unit: Unit, value: dict[str, Any], state: ClusterState) -> None:
        if self._wait_for_lock(unit, value):
            self._later.append((time.monotonic() + LOCK_WAIT_SECONDS, unit))
        elif isinstance(unit, PlanUnit):
            self._planned(unit, value, state)
        elif isinstance(unit, RangeUnit):
            self._range_done(unit, value, state)
        else:
            state.rows.append(self._finish(unit, value))

    def _planned(self, unit: PlanUnit, value: dict[str, Any], state: ClusterState) -> None:
        """A book to split was planned: its ranges go first, or the book whole."""
        book = unit.book
        if value.get("status") != "done":  # the book's own failure (its text, the lexicon)
            book.attempts = unit.attempts
            state.rows.append(self._finish(book, value))
            return
        try:
            split = splits.open_split(book, value, book.shares * RANGES_PER_WORKER)
        except VoicekitError as exc:
            busy = isinstance(exc, JobError) and "in use" in exc.message
            if busy and unit.lock_waits < LOCK_WAITS:  # a stopped run's worker, still ending
                unit.lock_waits += 1
                self._later.append((time.monotonic() + LOCK_WAIT_SECONDS, unit))
                return
            split = None  # not a job's folder, or in use for good: whole, its worker says why
        if split is None:
            self._queue.appendleft(book)
        else:
            self._queue.extendleft(reversed(split.ranges))

    def _range_done(self, unit: RangeUnit, value: dict[str, Any], state: ClusterState) -> None:
        split = unit.split
        if split.failed:
            return  # its book failed meanwhile: nothing more to do for it
        if value.get("status") != "done":
            self._fail_split(unit, value, state)
            return
        split.left.discard(unit.index)
        split.made.update(value.get("made", []))
        split.audio_seconds += float(value.get("audio_seconds", 0.0))
        split.synth_seconds += float(value.get("synth_seconds", 0.0))
        split.worked_on(str(value.get("node", "")))
        if value.get("segments"):
            try:
                split.returned_bytes += splits.store_segments(split, value["segments"])
            except (OSError, VoicekitError) as exc:
                error = exc.message if isinstance(exc, VoicekitError) else str(exc)
                self._fail_split(unit, {"status": "failed", "error": error}, state)
                return
        if not split.left:  # every range done: the book itself, assembled from its segments
            split.release()
            self._queue.appendleft(split.book)

    def _fail_split(self, unit: RangeUnit, value: dict[str, Any], state: ClusterState) -> None:
        """A range failed for its book's own reasons: the book fails, its ranges are dropped."""
        split = unit.split
        split.failed = True
        split.release()
        for other in [u for u in self._queue if isinstance(u, RangeUnit) and u.split is split]:
            self._queue.remove(other)
        self._later = [(t, u) for t, u in self._later
                       if not (isinstance(u, RangeUnit) and u.split is split)]  # fmt: skip
        split.book.attempts = unit.attempts
        state.rows.append(self._finish(split.book, {**value, "status": "failed"}))

    def _lost(self, slot: Slot, state: ClusterState) -> None:
        """A worker died: its unit goes back to the queue (or fails after too many tries)."""
        unit, slot.unit = slot.unit, None
        self.slots.remove(slot)
        if isinstance(unit, RangeUnit) and unit.split.failed:
            unit = None  # its book failed meanwhile
        if unit is not None:
            if unit.attempts < self.max_attempts:
                state.retries += 1
                self._queue.appendleft(unit)  # next free worker; finished buckets are kept
            elif isinstance(unit, RangeUnit):
                error = f"the worker of a range was lost {unit.attempts} times"
                self._fail_split(unit, {"status": "failed", "error": error}, state)
            else:
                book = unit.book if isinstance(unit, PlanUnit) else unit
                state.rows.append({
                    "input": book.key, "output": str(book.output), "status": "failed",
                    "error": f"its worker was lost {unit.attempts} times",
                })  # fmt: skip
        if self._queue:  # a replacement, anywhere the cluster has room
            fresh = self._start(None)
            self.slots.append(fresh)
            self._waiting[fresh.actor.info.remote()] = ("ready", fresh)

    def _wait_for_lock(self, unit: Unit, row: dict[str, Any]) -> bool:
        """Retry later a unit whose job folder a lost worker still locks?

        A retried unit; or any unit of a split book, whose job folder a lost range's
        process (a node cut off, not yet dead) may hold after its retry was done.
        """
        split = unit.split if isinstance(unit, (RangeUnit, BookUnit)) else None
        if not (row.get("busy") and (unit.attempts > 1 or split is not None)):
            return False
        unit.lock_waits += 1
        unit.attempts -= 1  # waiting for the lock is not another try
        return unit.lock_waits <= LOCK_WAITS

    def _failed_start(self, exc: Exception) -> None:
        """A worker that dies while loading the voice: a few are bad luck, more are a bug."""
        self._start_failures += 1
        if self._start_failures >= self.max_attempts:
            raise SynthesisError(
                f"cluster workers could not start: {_last_line(exc)}",
                hint="set VOICEKIT_DEBUG=1 and look at the Ray worker logs",
            )

    def _finish(self, unit: BookUnit, row: dict[str, Any]) -> dict[str, Any]:
        """The summary row of a book a worker returned; its files written, if it sent them."""
        files, made = row.pop("files", None), row.pop("readalong", None)
        if files is not None and row.get("status") == "done":
            for name, data in files.items():
                path = unit.output.parent / name
                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes(path, data)
            row["returned_bytes"] = sum(len(d) for d in files.values())
            if unit.split is not None:  # made where the job folder is not seen: it goes here
                splits.remove_job(unit)
        if made is not None and row.get("status") == "done":  # after the book, as locally
            try:
                row["returned_bytes"] = row.get("returned_bytes", 0) + readalong.deliver(unit, made)
            except VoicekitError as exc:
                row.update(status="failed", error=exc.message)
        for key in ("hint", "busy", "made", "segments"):
            row.pop(key, None)
        if unit.split is not None:
            row = splits.row(unit.split, row)
        return {"input": unit.key, "output": str(unit.output), **row, "attempts": unit.attempts}

    def _poll(self, wait: float = 0.0) -> list[dict[str, Any]]:
        """Each live worker's latest snapshot; a busy or lost one keeps its last.

        A query is left to answer in its own time (a worker busy phonemizing on a loaded
        node may take longer than a poll), and a new one is asked only once it has.
        """
        for slot in self.slots:
            if slot.info and slot.asked is None:
                slot.asked = slot.actor.snapshot.remote()
        asked = [s.asked for s in self.slots if s.asked is not None]
        ready, _ = self.ray.wait(asked, num_returns=len(asked), timeout=wait)
        for slot in self.slots:
            if slot.asked is not None and slot.asked in ready:
                # a lost one: the run loop hears of it from its book
                with contextlib.suppress(self.ray.exceptions.RayError):
                    slot.snapshot = self.ray.get(slot.asked)
                slot.asked = None
        return [{**s.info, **s.snapshot, "shared": s.shared} for s in self.slots if s.info]

    @staticmethod
    def _write_probe(units: list[BookUnit]) -> tuple[Path, str]:
        """A file in the first output folder: the workers that can read it share storage."""
        folder = Path(os.path.commonpath([u.output.parent for u in units]))
        folder.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(16)
        probe = folder / PROBE
        probe.write_text(token, encoding="utf-8")
        return probe, token


def _last_line(exc: Exception) -> str:
    """The last line of a Ray error (its cause, under Ray's traceback of where it came from)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _first_line(exc: Exception) -> str:
    return f"unexpected {type(exc).__name__}: {_last_line(exc)}"


def _zip_longest(*rows: list[Any]) -> Iterator[list[Any]]:
    for i in range(max((len(r) for r in rows), default=0)):
        yield [r[i] for r in rows if i < len(r)]


def _env_int(name: str) -> int | None:
    value = os.environ.get(name, "").strip()
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise InputError(f"{name}={value!r} must be a whole number of at least 1")
    return int(value)


def _env_split() -> bool:
    value = os.environ.get(SPLIT_ENV, "1").strip() or "1"
    if value not in ("0", "1"):
        raise InputError(f"{SPLIT_ENV}={value!r} must be 0 or 1")
    return value == "1"


def _env_storage() -> Storage:
    value = os.environ.get(STORAGE_ENV, "auto").strip() or "auto"
    if value not in ("auto", "shared", "object-store"):
        raise InputError(f"{STORAGE_ENV}={value!r} must be auto, shared or object-store")
    return value  # type: ignore[return-value]
