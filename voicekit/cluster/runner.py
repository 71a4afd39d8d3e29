"""The driver: place one worker per GPU (or per group of CPU cores), hand out whole books,
retry the books of lost workers, and report where the batch stands.

Storage: every worker checks whether it sees the driver's output folder (a probe file
the driver writes there). One that does writes the book and its job folder in place,
so a book retried elsewhere resumes from its finished buckets. One that does not makes
the book in node-local scratch and sends the finished files back through Ray's object
store; the driver writes them.
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

from voicekit.cluster.connect import import_ray
from voicekit.cluster.worker import BookWorker
from voicekit.errors import InputError, SynthesisError
from voicekit.settings import SynthSettings
from voicekit.synth.options import RunOptions
from voicekit.system.fsutil import write_bytes
from voicekit.text.model import Book

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


@dataclass
class Slot:
    """A worker the driver placed: its actor, where it runs, and what it is doing."""

    actor: Any
    name: str
    info: dict[str, Any] = field(default_factory=dict)
    shared: bool = True
    unit: BookUnit | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)
    asked: Any = None
    """The snapshot query not answered yet."""


@dataclass
class ClusterState:
    """Where the batch stands, across the cluster (what the CLI draws)."""

    books: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    """Each worker's snapshot: node, host, device, the book in hand, its totals."""
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: bool = False

    @property
    def done(self) -> int:
        return sum(r["status"] == "done" for r in self.rows)

    @property
    def failed(self) -> int:
        return sum(r["status"] == "failed" for r in self.rows)

    @property
    def in_flight(self) -> list[dict[str, Any]]:
        return [w["now"] for w in self.workers if w.get("now")]

    def totals(self) -> dict[str, Any]:
        """Books, buckets, audio made and the cluster's x-real-time so far."""
        audio = sum(w.get("audio_seconds", 0.0) for w in self.workers)
        audio += sum(n.get("audio_seconds", 0.0) for n in self.in_flight)
        wall = time.monotonic() - self.started
        return {
            "books": self.books, "done": self.done, "failed": self.failed,
            "in_flight": len(self.in_flight), "retries": self.retries,
            "buckets_made": sum(w.get("buckets", 0) for w in self.workers),
            "audio_seconds": round(audio, 3), "wall_seconds": round(wall, 3),
            "x_realtime": round(audio / wall, 2) if wall > 0 and audio else None,
            "workers": len(self.workers),
        }  # fmt: skip


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
    ) -> None:
        self.ray = import_ray()
        self.settings = settings
        self.storage: Storage = storage or _env_storage()
        self.max_workers = workers or _env_int(WORKERS_ENV)
        self.cpus_per_worker = cpus_per_worker or _env_int(CPUS_ENV)
        self.max_attempts = max_attempts
        self.trace_dir = str(trace_dir) if trace_dir else None
        self.slots: list[Slot] = []
        self._made = 0
        self._start_failures = 0

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
        probe, token = self._write_probe(units)
        places = self.placements()
        if not places:
            raise InputError("the Ray cluster has no node with a CPU or GPU to run a worker")
        queue: deque[BookUnit] = deque(units)
        waiting: dict[Any, tuple[str, Slot]] = {}  # ref -> ("ready" | "book", slot)
        for place in places[: len(units)]:  # no more workers than books
            slot = self._start(place)
            self.slots.append(slot)
            waiting[slot.actor.info.remote()] = ("ready", slot)
        idle: list[Slot] = []
        later: list[tuple[float, BookUnit]] = []  # retried books whose job is still locked
        last_poll = 0.0
        try:
            while queue or later or any(kind == "book" for kind, _ in waiting.values()):
                for due in [item for item in later if item[0] <= time.monotonic()]:
                    later.remove(due)
                    queue.append(due[1])
                while queue and idle:
                    slot, unit = idle.pop(0), queue.popleft()
                    unit.attempts += 1
                    slot.unit = unit
                    ref = slot.actor.run_book.remote(
                        unit.key, unit.book, str(unit.output), unit.options, slot.shared
                    )
                    waiting[ref] = ("book", slot)
                ready, _ = ray.wait(list(waiting), num_returns=1, timeout=POLL_SECONDS)
                for ref in ready:
                    kind, slot = waiting.pop(ref)
                    try:
                        value = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        if kind == "ready":
                            self._failed_start(exc)
                        self._lost(slot, kind, queue, waiting, state)
                        continue
                    except ray.exceptions.RayError as exc:  # the book's own, the worker lives
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
                        assert slot.unit is not None
                        if self._wait_for_lock(slot.unit, value):
                            later.append((time.monotonic() + LOCK_WAIT_SECONDS, slot.unit))
                        else:
                            state.rows.append(self._finish(slot.unit, value))
                        slot.unit = None
                    idle.append(slot)
                if time.monotonic() - last_poll >= POLL_SECONDS:
                    last_poll = time.monotonic()
                    state.workers = self._poll()
                    yield state
            self._poll(wait=5.0)  # the queries out, then fresh ones: the final totals
            state.workers = [{**w, "now": {}} for w in self._poll(wait=5.0)]
        finally:
            probe.unlink(missing_ok=True)
            for slot in self.slots:
                ray.kill(slot.actor)
        state.finished = True
        yield state

    def _lost(self, slot: Slot, kind: str, queue: deque[BookUnit],
              waiting: dict[Any, tuple[str, Slot]], state: ClusterState) -> None:  # fmt: skip
        """A worker died: its book goes back to the queue (or fails after too many tries)."""
        unit, slot.unit = slot.unit, None
        self.slots.remove(slot)
        if unit is not None:
            if unit.attempts >= self.max_attempts:
                state.rows.append({
                    "input": unit.key, "output": str(unit.output), "status": "failed",
                    "error": f"its worker was lost {unit.attempts} times",
                })  # fmt: skip
            else:
                state.retries += 1
                queue.appendleft(unit)  # next free worker; finished buckets are kept
        if queue:  # a replacement, anywhere the cluster has room
            fresh = self._start(None)
            self.slots.append(fresh)
            waiting[fresh.actor.info.remote()] = ("ready", fresh)

    def _wait_for_lock(self, unit: BookUnit, row: dict[str, Any]) -> bool:
        """Retry later a retried book whose job folder the lost worker still locks?"""
        if not (row.get("busy") and unit.attempts > 1):
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
        files = row.pop("files", None)
        if files is not None and row.get("status") == "done":
            for name, data in files.items():
                path = unit.output.parent / name
                path.parent.mkdir(parents=True, exist_ok=True)
                write_bytes(path, data)
            row["returned_bytes"] = sum(len(d) for d in files.values())
        row.pop("hint", None)
        row.pop("busy", None)
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


def _env_storage() -> Storage:
    value = os.environ.get(STORAGE_ENV, "auto").strip() or "auto"
    if value not in ("auto", "shared", "object-store"):
        raise InputError(f"{STORAGE_ENV}={value!r} must be auto, shared or object-store")
    return value  # type: ignore[return-value]
