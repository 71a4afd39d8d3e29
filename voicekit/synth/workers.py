"""``--workers N``: synthesis in N processes, each with its own voice and backend.

For onnxruntime on the CPU the workers are threads of the main process over one
loaded voice instead (synth/lanes.py): the same calls and bytes, one copy of the
sessions. Processes remain for torch and OpenVINO on the CPU, and for the
phonemizers that feed a CUDA run.

One onnxruntime session does not use two CPU cores well (many small ops, one
sentence at a time); issue 11 measured two processes of one thread each 1.12x
faster on an idle 2-core machine (not reproduced on a saturated one:
docs/BENCHMARKS.md, section 11). Each worker loads the voice and a backend once,
with its share of ``--threads``, then takes calls (groups of buckets in book
order, grouped as the in-process path groups them), phonemizes them itself (so
espeak-ng scales with the cores too), synthesizes them and writes their segments
into the job folder. The main process holds the job's lock, hands out calls, at
most two per worker in flight (memory stays bounded), and yields results as they
come: out of order is fine, segments are named by content hash.

Processes are started by ``spawn``, never ``fork``: a forked copy of onnxruntime's
or torch's thread pools deadlocks. A worker that dies or fails stops the run with a
one-line SynthesisError; the segments already written stay for the next run.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from voicekit.backends.base import Utterance
from voicekit.backends.voices import Voice
from voicekit.errors import SynthesisError, VoicekitError
from voicekit.settings import SynthSettings
from voicekit.synth.calls import (
    CallRunner,
    Result,
    group_calls,
    load_backend,
    physical_cores,
)
from voicekit.synth.feed import bucket_utterances, prefetch
from voicekit.synth.job import write_segment
from voicekit.system.devices import parse_device
from voicekit.text.sentences import Bucket

IN_FLIGHT = 2
"""Calls queued per worker: one running, one ready for when it finishes."""
WORKER_MB = 400
"""RAM one CPU worker needs (voice sessions, buffers; 264 MB peak measured on harbour,
2026-12-07, with room for longer sentences)."""
LANE_MB = 200
"""RAM one more thread of synth/lanes.py needs (its activations: two lanes peaked 70-90 MB
above one on the bench text, 160 MB on Alice's longest sentences, 2026-12-07)."""
MAX_AUTO = 8
"""Auto never starts more workers than this (measured on 2 cores only; see auto_workers)."""
MAX_PHONEMIZERS = 4
"""Phonemizer processes beside a CUDA run: espeak-ng took 3.6 ms a sentence on one core
here, so four make ~1,100 sentences a second, ahead of any GPU we expect (not measured)."""
_POLL = 0.2  # seconds between checks that every worker is still alive
_STOP_WAIT = 3.0  # seconds a worker gets to end before it is killed


def auto_workers(
    device: str, cores: int | None = None, free_mb: float | None = None, each_mb: int = WORKER_MB
) -> int:
    """How many synthesis workers ``--workers 0`` runs, each needing ``each_mb`` of RAM
    (``WORKER_MB`` for a process, ``LANE_MB`` for a thread of synth/lanes.py).

    CPU: one per physical core, one thread each (issue 11 measured two 1-thread
    processes 1.12x faster than one 2-thread process on an idle 2-core machine; on
    a saturated shared one they were slower: docs/BENCHMARKS.md, section 11), as
    many as the RAM holds, at most MAX_AUTO. CUDA: one. A second process would create a second
    CUDA context (hundreds of MB, and the kernels of two processes take turns on
    the GPU rather than overlap); one process with full batches keeps the GPU busy,
    and its phonemizer thread runs ahead of it. Not measured: no GPU here.
    """
    if parse_device(device).is_cuda:
        return 1
    cores = physical_cores() if cores is None else cores
    if free_mb is None:
        free_mb = psutil.virtual_memory().available / 2**20
    return max(1, min(cores, int(free_mb // each_mb), MAX_AUTO))


CHARS_PER_WORKER = 350
"""Text a started worker process must have to pay for itself (auto only).

A worker starts Python, numpy and onnxruntime and loads the sessions before any
audio. One sentence (75 characters) took 1.9-2.2 s in process and 2.4-2.6 s in two
workers; 559 characters 5.3 s against 5.5-5.7 s; 1,006 characters
6.8-7.3 s against 6.2 s (docs/BENCHMARKS.md, section 14.3)."""


def worker_count(
    settings: SynthSettings,
    device: str,
    calls: int,
    chars: int | None = None,
    *,
    processes: bool = True,
) -> int:
    """Workers this run uses: ``--workers`` (0: auto), never more than there are calls;
    auto, for worker ``processes``, also no more than one for each ``CHARS_PER_WORKER``
    of the ``chars`` to read (threads, synth/lanes.py, start at no cost).

    1 means the in-process path: no extra process or thread at all.
    """
    wanted = settings.workers or auto_workers(device, each_mb=WORKER_MB if processes else LANE_MB)
    if not settings.workers and processes and chars is not None:
        wanted = min(wanted, max(1, chars // CHARS_PER_WORKER))
    if parse_device(device).is_cuda:
        wanted = 1  # one CUDA context (auto_workers says why)
    return max(1, min(wanted, calls))


def count_calls(buckets: list[Bucket], per_call: int) -> int:
    return sum(1 for _ in group_calls(buckets, per_call))


def phonemizer_count(settings: SynthSettings, device: str, buckets: int) -> int:
    """Phonemizer processes feeding a CUDA run (1: the in-process thread of synth/feed.py).

    CUDA keeps synthesis in one process; what ``--workers`` buys there is phonemization
    on the other cores (espeak-ng holds a lock: one thread phonemizes at a time).
    Auto: the cores but one (the GPU's feeder), at most MAX_PHONEMIZERS.
    """
    if not parse_device(device).is_cuda:
        return 1
    wanted = settings.workers or min(physical_cores() - 1, MAX_PHONEMIZERS)
    return max(1, min(wanted, buckets))


_VOICE: list[Voice] = []  # the phonemizer process's voice, set once by its initializer


def _init_phonemizer(voice: Voice) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process stops the pool
    _VOICE.append(voice)


def _phonemize(bucket: Bucket, seed: int) -> list[Utterance | None]:
    return bucket_utterances(_VOICE[0], bucket, seed)


def feed(
    voice: Voice,
    pending: list[Bucket],
    seed: int,
    sentences: int,
    processes: int = 1,
    clock: Callable[[str, float], None] | None = None,
) -> Iterator[tuple[Bucket, list[Utterance | None]]]:
    """Buckets in book order with their utterances, phonemized ahead of the voice.

    One process: synth/feed.prefetch's thread (``clock`` is told its phonemizing
    time). More: that many spawned processes, up to ``sentences`` (at least 8 buckets)
    ahead; a process that dies ends the run with a one-line SynthesisError instead of
    a hang.
    """
    if processes <= 1:
        yield from prefetch(voice, pending, seed, sentences=sentences, clock=clock)
        return
    ctx = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(processes, ctx, initializer=_init_phonemizer, initargs=(voice,))
    ahead: deque[tuple[Bucket, Future[list[Utterance | None]]]] = deque()
    queued = 0  # sentences in ``ahead``
    todo = iter(pending)
    try:
        with _sigint_ignored():  # the processes start on the first submits
            for started in [pool.submit(int) for _ in range(processes)]:
                started.result()  # all at once: an idle process would take the next one
        while True:
            while len(ahead) < 8 or queued < sentences:
                bucket = next(todo, None)
                if bucket is None:
                    break
                ahead.append((bucket, pool.submit(_phonemize, bucket, seed)))
                queued += len(bucket.sentences)
            if not ahead:
                return
            bucket, future = ahead.popleft()
            queued -= len(bucket.sentences)
            try:
                utts = future.result()
            except VoicekitError:
                raise
            except Exception as exc:  # BrokenProcessPool: a phonemizer died
                raise SynthesisError(
                    f"a phonemizer process failed: {type(exc).__name__}: {exc}",
                    hint="finished buckets are kept; rerun the same command to go on",
                ) from exc
            yield bucket, utts
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Children started in here inherit an ignored SIGINT from birth.

    Python keeps a SIGINT disposition its parent changed, so a Ctrl-C during their
    start-up prints nothing; the main process stops them itself.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        yield
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


@dataclass(frozen=True)
class _Work:
    """What every worker loads once."""

    voice: Voice
    settings: SynthSettings
    device: str
    backend: str
    folder: Path
    workers: int


def _worker(index: int, work: _Work, tasks: Any, results: Any) -> None:
    """A worker process: load once, then phonemize, synthesize and write call after call."""
    # Ctrl-C reaches every process of the terminal's group: the main process stops
    # the workers itself, so they do not each print a KeyboardInterrupt.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    backend = None
    try:
        backend, note = load_backend(
            work.settings, work.voice, work.device, work.backend, work.workers
        )
        results.put(("ready", index, backend.batch_sentences, note))
        seed = work.settings.seed

        def write(digest: str, pcm: Any, lengths: list[int]) -> None:
            write_segment(work.folder, digest, pcm, lengths)

        # A call's segments are all written before it is reported and the next call is
        # taken, as they were: a worker is one of a process per core, so a writer
        # thread beside it would take another worker's core rather than a free one.
        with CallRunner(backend, write, overlap=False) as runner:
            while (task := _next_task(tasks)) is not None:
                call, buckets = task
                began = time.perf_counter()
                group = [(b, bucket_utterances(work.voice, b, seed)) for b in buckets]
                phonemize = time.perf_counter() - began
                for finished in [*runner.submit(group), *runner.drain()]:  # this call alone
                    done = [(bucket.hash, samples) for bucket, samples in finished.buckets]
                    timings = {**finished.timings, "phonemize": phonemize}
                    results.put(("done", index, call, done, timings))
    except BaseException as exc:  # handed to the main process, which raises it
        results.put(("error", index, _describe(exc)))
    finally:
        if backend is not None:
            backend.close()


def _next_task(tasks: Any) -> Any:
    """The next call, or None: no more calls, or the main process is gone (killed)."""
    parent = multiprocessing.parent_process()
    while True:
        try:
            return tasks.get(timeout=1.0)
        except queue.Empty:
            if parent is not None and not parent.is_alive():
                return None  # an orphan would otherwise wait for ever


def _describe(exc: BaseException) -> tuple[type[VoicekitError], str, str | None]:
    if isinstance(exc, VoicekitError):
        return type(exc), exc.message, exc.hint
    return SynthesisError, f"{type(exc).__name__}: {exc}", None


class WorkerPool:
    """N synthesis processes over one job folder: ``with`` it, :meth:`start`, :meth:`results`.

    Leaving the ``with`` ends the workers: told to stop after the last call, else
    (an error, Ctrl-C, a closed generator) terminated at once.
    """

    def __init__(
        self,
        voice: Voice,
        settings: SynthSettings,
        device: str,
        backend: str,
        folder: Path,
        workers: int,
    ) -> None:
        self.workers = workers
        self._work = _Work(voice, settings, device, backend, folder, workers)
        self._ctx = multiprocessing.get_context("spawn")
        self._tasks: Any = self._ctx.Queue()
        self._results: Any = self._ctx.Queue()
        self._procs: list[Any] = []
        self._per_call = 1
        self._grace = 0.0

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop(self._grace)  # 0 unless every call finished: terminated at once

    def start(self) -> str:
        """Start the workers and wait until one has loaded the voice; its memory note, if any."""
        self._start()
        while True:
            kind, _index, *rest = self._next()
            if kind == "ready":
                self._per_call = max(1, int(rest[0]))  # the same for every worker
                return str(rest[1])

    def results(self, pending: list[Bucket]) -> Generator[Result, None, None]:
        """Make every pending bucket; yield (bucket, samples, stage seconds) as each call ends.

        A call's stage seconds come with its last bucket (empty dicts with the others).
        """
        calls = enumerate(group_calls(pending, self._per_call))
        in_flight: dict[int, list[Bucket]] = {}
        self._feed(calls, in_flight)
        while in_flight:
            kind, _index, *rest = self._next()
            if kind != "done":
                continue  # another worker's "ready"
            call, done, timings = rest
            buckets = in_flight.pop(call)
            for n, (bucket, (digest, samples)) in enumerate(zip(buckets, done, strict=True)):
                if bucket.hash != digest:  # pragma: no cover - a broken protocol, not input
                    raise SynthesisError(f"synthesis worker {_index} answered out of turn")
                yield bucket, samples, timings if n == len(buckets) - 1 else {}
            self._feed(calls, in_flight)
        for _ in self._procs:
            self._tasks.put(None)  # done: each worker closes its backend and ends
        self._grace = _STOP_WAIT

    def _feed(self, calls: Iterator[tuple[int, list[Bucket]]], in_flight: dict[int, Any]) -> None:
        while len(in_flight) < IN_FLIGHT * self.workers:
            item = next(calls, None)
            if item is None:
                return
            call, buckets = item
            in_flight[call] = buckets
            self._tasks.put((call, buckets))

    def _start(self) -> None:
        with _sigint_ignored():
            for index in range(self.workers):
                proc = self._ctx.Process(
                    target=_worker,
                    args=(index, self._work, self._tasks, self._results),
                    name=f"voicekit-worker-{index}",
                    daemon=True,
                )
                proc.start()
                self._procs.append(proc)

    def _next(self) -> tuple[Any, ...]:
        """The next message of any worker; a worker's error, or its death, raised here."""
        while True:
            self._check_alive()  # every time: busy workers would hide a dead one from a timeout
            try:
                message: tuple[Any, ...] = self._results.get(timeout=_POLL)
            except queue.Empty:
                continue
            if message[0] == "error":
                cls, text, hint = message[2]
                raise self._failed(message[1], cls, text, hint)
            return message

    def _check_alive(self) -> None:
        for index, proc in enumerate(self._procs):
            if proc.is_alive():
                continue
            # It may have said why before it ended: its last message is read first.
            with contextlib.suppress(queue.Empty):
                while True:
                    message = self._results.get(timeout=_POLL)
                    if message[0] == "error":
                        cls, text, hint = message[2]
                        raise self._failed(message[1], cls, text, hint)
            code = proc.exitcode
            how = (
                f"was killed by signal {-code}" if code is not None and code < 0
                else f"exited with code {code}"
            )  # fmt: skip
            raise self._failed(index, SynthesisError, f"synthesis worker {index} {how}", None)

    @staticmethod
    def _failed(index: int, cls: type[VoicekitError], text: str, hint: str | None) -> VoicekitError:
        note = "finished buckets are kept; rerun the same command to go on"
        message = (
            text if text.startswith("synthesis worker") else f"synthesis worker {index}: {text}"
        )
        return cls(message, hint=f"{hint}; {note}" if hint else note)

    def _stop(self, grace: float) -> None:
        """End every worker: wait ``grace`` seconds for those told to stop, then terminate."""
        deadline = time.monotonic() + grace
        for proc in self._procs:
            proc.join(max(0.0, deadline - time.monotonic()))
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM ends it at once, even inside onnxruntime
        for proc in self._procs:
            proc.join(_STOP_WAIT)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._procs = []
        for q in (self._tasks, self._results):
            q.cancel_join_thread()  # never block on unread calls at exit
            q.close()
