"""The worker: one Ray actor per GPU (or per group of CPU cores), one voice, whole books.

Why actors and not Ray Data's ``map_batches``: the unit of work is a whole book, which
makes a file of its own (minutes to hours of audio, a job folder to resume from), not a
row of a dataset. An actor keeps the voice and its backend (CUDA graphs included) loaded
across books, answers progress queries while it works (a threaded actor), and the driver
decides what a lost actor means (retry the book elsewhere, resuming from its job folder).
Ray Data would add a dataset layer, block batching and its own retry policy for no gain
at book granularity.

The actor class is plain Python; ``runner`` wraps it with ``ray.remote`` at run time, so
this module imports without Ray.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from voicekit.errors import JobError, VoicekitError
from voicekit.settings import SynthSettings
from voicekit.synth.options import RunOptions
from voicekit.synth.pipeline import Synthesizer
from voicekit.system.devices import choose_device
from voicekit.text.model import Book

SCRATCH = "voicekit-cluster"
"""Node-local folder (under the temp dir) for books made without a shared filesystem."""


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
        self._lock = threading.Lock()
        self._now: dict[str, Any] = {}
        self._totals = {"books": 0, "buckets": 0, "audio_seconds": 0.0, "synth_seconds": 0.0}

    def info(self) -> dict[str, Any]:
        """Who this worker is: node, host, process, device and backend."""
        return {"node": self.node, "host": self.host, "pid": os.getpid(),
                "device": self.choice.device, "backend": self.choice.backend}  # fmt: skip

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

    def run_book(self, key: str, book: Book, output: str, options: RunOptions,
                 shared: bool) -> dict[str, Any]:  # fmt: skip
        """Make one book; its row for the batch summary (and its files without shared storage).

        A book that fails for its own reasons is a row with status "failed", not an
        exception: only a lost worker makes the driver retry.
        """
        target = Path(output)
        scratch = None if shared else scratch_dir(target)
        if scratch is not None:  # made here, the files go back through the object store
            scratch.mkdir(parents=True, exist_ok=True)
            target = scratch / "out" / target.name
            target.parent.mkdir(exist_ok=True)
            options = replace(options, job_dir=scratch / "job", force=True)
        row: dict[str, Any] = {"node": self.node, "host": self.host, "pid": os.getpid()}
        started = time.monotonic()
        try:
            row.update(self._make(key, book, target, options))
            if scratch is not None:
                row["files"] = _collect(target.parent)
                shutil.rmtree(scratch, ignore_errors=True)
        except VoicekitError as exc:
            row.update(status="failed", error=exc.message, hint=exc.hint)
            # a lost worker's process may live on a moment, holding the job's lock
            row["busy"] = isinstance(exc, JobError) and "in use" in exc.message
        except Exception as exc:  # a bug met by one book must not cost the rest either
            row.update(status="failed", error=f"unexpected {type(exc).__name__}: {exc}")
        finally:
            with self._lock:
                self._now = {}
        row.setdefault("wall_seconds", round(time.monotonic() - started, 3))
        return row

    def _make(self, key: str, book: Book, output: Path, options: RunOptions) -> dict[str, Any]:
        plan = self.synth.plan(book)
        result = None
        with self._lock:
            self._now = {"book": key, "phase": "plan", "buckets_done": 0,
                         "buckets_total": len(plan.buckets), "audio_seconds": 0.0}  # fmt: skip
        trace = self.trace.open("a", encoding="utf-8") if self.trace else None
        try:
            for event in self.synth.run(plan, output, options):
                if event.phase == "synth" and event.bucket_id is not None:
                    with self._lock:
                        self._totals["buckets"] += 1
                    if trace is not None:  # tests count buckets made, across lost workers
                        trace.write(f"{key}\t{event.bucket_id}\n")
                        trace.flush()
                with self._lock:
                    self._now.update(
                        phase=event.phase, buckets_done=event.buckets_done,
                        buckets_total=event.buckets_total, audio_seconds=event.audio_seconds,
                        peak_gpu_mb=event.memory.peak_gpu_mb if event.memory else None,
                    )  # fmt: skip
                if event.result is not None:
                    result = event.result
        finally:
            if trace is not None:
                trace.close()
        assert result is not None
        with self._lock:
            self._totals["books"] += 1
            self._totals["audio_seconds"] += result.audio_seconds
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
        }


def _collect(folder: Path) -> dict[str, bytes]:
    """Every file of a finished book (audio, playlist, captions), by path under ``folder``."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }
