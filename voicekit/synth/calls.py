"""Calls of the voice: load the backend, run groups of buckets, checkpoint each bucket.

Shared by the in-process path (synth/pipeline.py) and the synthesis workers
(synth/workers.py), so both make the same calls and write the same segments.

``CallRunner`` keeps the device busy between calls. A call's segments (int16
conversion, ``np.savez``, the atomic rename; issue 16 put them at 80-120 ms a call)
are written by one writer thread while the next call runs; and where the backend
queues its work on a device (``base.Submitting``: torch on CUDA), call N+1 is
submitted before call N's audio is taken, so N+1's acoustic stage runs beside N's
vocoder. What it keeps:

- a bucket is reported only once its segment is on disk (the caller then counts it
  as done), in book order, with the bytes of a serial run;
- at most one call's audio waits for the writer (the call being written); the next
  call's audio is handed over only when the writer has finished the last;
- an error in the writer (disk full: a JobError, exit 7, finished buckets kept)
  comes out of the run where the serial path raised it, before the bucket is
  reported, and no later segment of that call is written;
- closing the runner (an error, Ctrl-C, a closed generator) drops segments not
  started and waits for the one being written (atomic: whole or not at all), so no
  thread writes into a job after its run has let go of it. Closed where it yields
  (the caller stops after a reported bucket), the writer is idle: what is on disk
  is the calls reported.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import psutil

from voicekit.backends.base import (
    Backend,
    PendingCall,
    Ready,
    Utterance,
    create_backend,
    overlaps_calls,
    submit_call,
)
from voicekit.backends.memory import fit_batch
from voicekit.backends.voices import Voice
from voicekit.formats.wav import float_to_pcm16
from voicekit.settings import SynthSettings
from voicekit.system.devices import parse_device
from voicekit.text.sentences import Bucket

T = TypeVar("T")
Group = list[tuple[Bucket, list[Utterance | None]]]
"""Buckets of one call with their sentences ready for the voice."""
Writer = Callable[[str, np.ndarray, list[int]], None]
"""Writes one segment: (bucket hash, int16 PCM, samples of each sentence)."""
Result = tuple[Bucket, int, dict[str, float]]
"""A bucket whose segment is written, its samples, and its call's stage seconds (last bucket)."""
STAGES = ("phonemize", "acoustic", "vocoder", "checkpoint")
"""The per-stage seconds every call reports (a backend without timings adds "synthesize")."""


def physical_cores() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def backend_threads(settings: SynthSettings, device: str, backend: str, workers: int = 1) -> int:
    """Inference threads of one process's backend when ``workers`` processes share the cores.

    ``--threads`` is split between the workers. Unset, onnxruntime on the CPU runs one
    thread per process: its convolutions (MLAS) round differently with another thread
    count (1 vs 2 threads: a sample off by one in a few short sentences; 4 or 8: many;
    docs/BENCHMARKS.md, section 11), so one thread keeps a book's bytes the same for any
    ``--workers`` and any machine, and the workers use the cores instead. Elsewhere
    (CUDA, torch) the physical cores are split.
    """
    if settings.threads:
        return max(1, settings.threads // workers)
    # openvino runs the same graphs on the CPU: held to the same rule until measured
    if backend in ("ort", "openvino") and not parse_device(device).is_cuda:
        return 1
    return max(1, physical_cores() // workers)


def load_backend(
    settings: SynthSettings, voice: Voice, device: str, backend: str, workers: int = 1
) -> tuple[Backend, str]:
    """The backend of one of ``workers`` processes, with its batch lowered to fit the memory;
    and a note when it was lowered.

    Refuses or shrinks before loading rather than run out half-way through a book;
    batch_size is not in the audio fingerprint, so lowering it keeps resume exact.
    """
    settings = settings.replace(threads=backend_threads(settings, device, backend, workers))
    batch, note = fit_batch(settings, voice, device, backend)
    if note:
        settings = settings.replace(batch_size=batch)
    return create_backend(backend, voice, settings, device), note


def _in_calls(items: Iterable[T], size: Callable[[T], int], per_call: int) -> Iterator[list[T]]:
    """The one rule for cutting calls: items in book order until a call holds at least
    ``per_call`` sentences (``size`` of each item; the last call: fewer). Streams, so
    the in-process path cuts phonemized buckets as they come, where the workers and the
    cluster's ranges cut the plan's: the same calls either way."""
    group: list[T] = []
    held = 0
    for item in items:
        group.append(item)
        held += size(item)
        if held >= max(1, per_call):
            yield group
            group, held = [], 0
    if group:
        yield group


def call_starts(sentences: Sequence[int], per_call: int) -> list[int]:
    """Where each call begins, for buckets of these sentence counts in book order
    (the cluster's bucket ranges cut only here: synth/ranges.py)."""
    starts, at = [], 0
    for call in _in_calls(sentences, int, per_call):
        starts.append(at)
        at += len(call)
    return starts


def group_calls(buckets: list[Bucket], per_call: int) -> Iterator[list[Bucket]]:
    """Buckets in book order, in groups of at least ``per_call`` sentences (the last: fewer)."""
    return _in_calls(buckets, lambda b: len(b.sentences), per_call)


def gather_calls(
    items: Iterable[tuple[Bucket, list[Utterance | None]]], per_call: int
) -> Iterator[Group]:
    """Phonemized buckets in groups of at least ``per_call`` sentences, as group_calls."""
    return _in_calls(items, lambda item: len(item[1]), per_call)


@dataclass
class CallDone:
    """A call whose every segment is written."""

    buckets: list[tuple[Bucket, int]]
    """Each bucket with its samples, in the call's order."""
    timings: dict[str, float]
    """The call's stage seconds ("checkpoint": the writer's busy time on its buckets)."""


@dataclass
class _Writing:
    """A call handed to the writer: one future per bucket, in order."""

    buckets: list[Bucket]
    futures: list[Future[tuple[int, float] | None]]
    timings: dict[str, float] = field(default_factory=dict)


class CallRunner:
    """Calls of one backend one after another, their segments written in a thread.

    :meth:`submit` each group, then :meth:`drain`; both yield the calls whose segments
    are written (:class:`CallDone`, in order). ``overlap`` (default: what the backend
    says, ``base.overlaps_calls``) submits call N+1 before taking call N's audio.
    Use it in a ``with``: leaving it stops the writer (the module docstring says how).
    """

    def __init__(self, backend: Backend, write: Writer, *, overlap: bool | None = None) -> None:
        self.backend = backend
        self.overlap = overlaps_calls(backend) if overlap is None else overlap
        self._write = write
        self._device: deque[tuple[Group, PendingCall, float]] = deque()
        self._writing: deque[_Writing] = deque()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="voicekit-writer")
        self._stop = threading.Event()  # set by a failed write or close: skip the rest

    def __enter__(self) -> CallRunner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, group: Group) -> Iterator[CallDone]:
        """Start ``group``'s call; yields the calls finished meanwhile.

        Overlapping, the call before it is taken from the device now (its audio to the
        writer); otherwise this one is made and handed to the writer at once.
        """
        if self._stop.is_set():  # a write failed: raise its error before starting more work
            while self._writing:
                yield self._written(self._writing.popleft())
        utterances = [u for _, utts in group for u in utts if u is not None]
        began = time.perf_counter()
        # a call with nothing to say (lone dashes) never reaches the backend
        call = submit_call(self.backend, utterances) if utterances else Ready([])
        self._device.append((group, call, time.perf_counter() - began))
        while len(self._device) > (1 if self.overlap else 0):
            yield from self._collect()

    def drain(self) -> Iterator[CallDone]:
        """Finish every call started: its audio, then its segments; yields each call."""
        while self._device:
            yield from self._collect()
        while self._writing:
            yield self._written(self._writing.popleft())

    def close(self) -> None:
        """Drop the segments not started; wait for the one being written."""
        self._stop.set()
        self._device.clear()  # queued device work finishes on its own; its audio is dropped
        self._writing.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _collect(self) -> Iterator[CallDone]:
        """Take the oldest call's audio and hand it to the writer (after the last call's)."""
        group, call, submitted = self._device.popleft()
        began = time.perf_counter()
        audio = call.result()
        # phonemize: the workers time it; in-process it runs in the feed's thread, overlapped
        timings = {stage: 0.0 for stage in STAGES if stage != "phonemize"}
        take = getattr(self.backend, "take_timings", None)
        if take is not None:
            # Overlapping, this holds the next call's acoustic launch too: each second is
            # taken once, so a run's sum is exact, though not split by call.
            timings.update(take())
        else:  # no per-stage figures from this backend: the whole call
            timings["synthesize"] = submitted + time.perf_counter() - began
        # The bound: the writer holds at most one call; this one waits for it to finish.
        # It is handed over after the finished call is reported, so a run closed there
        # leaves on disk the calls it reported, and no more.
        while self._writing:
            yield self._written(self._writing.popleft())
        self._writing.append(self._hand_over(group, audio, timings))

    def _hand_over(
        self, group: Group, audio: list[np.ndarray], timings: dict[str, float]
    ) -> _Writing:
        sounds = iter(audio)
        writing = _Writing([b for b, _ in group], [], timings)
        for bucket, utts in group:
            mine = [next(sounds) if u is not None else None for u in utts]
            writing.futures.append(self._pool.submit(self._write_bucket, bucket, mine))
        return writing

    def _write_bucket(
        self, bucket: Bucket, audio: list[np.ndarray | None]
    ) -> tuple[int, float] | None:
        """In the writer thread: a bucket's PCM and segment; (samples, busy seconds)."""
        if self._stop.is_set():  # a write before it failed, or the run is stopping
            return None
        began = time.perf_counter()
        try:
            pieces = [float_to_pcm16(a) if a is not None else np.zeros(0, np.int16) for a in audio]
            pcm = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
            self._write(bucket.hash, pcm, [len(p) for p in pieces])
        except BaseException:
            self._stop.set()  # as the serial path: no later segment of the run is written
            raise
        return len(pcm), time.perf_counter() - began

    def _written(self, writing: _Writing) -> CallDone:
        """Wait for a call's segments; the writer's error, if any, raised here."""
        done: list[tuple[Bucket, int]] = []
        busy = 0.0
        for bucket, future in zip(writing.buckets, writing.futures, strict=True):
            outcome = future.result()
            if outcome is None:  # pragma: no cover - skipped only after an error raised above
                raise RuntimeError("a segment was skipped after no error")
            samples, seconds = outcome
            done.append((bucket, samples))
            busy += seconds
        writing.timings["checkpoint"] = writing.timings.get("checkpoint", 0.0) + busy
        return CallDone(done, writing.timings)


def run_calls(
    backend: Backend, groups: Iterable[Group], write: Writer, *, overlap: bool | None = None
) -> Iterator[CallDone]:
    """Every group through ``backend``, each bucket's segment written; yields each call."""
    with CallRunner(backend, write, overlap=overlap) as runner:
        for group in groups:
            yield from runner.submit(group)
        yield from runner.drain()


def bucket_results(calls: Iterable[CallDone]) -> Iterator[Result]:
    """Calls as (bucket, samples, timings): a call's stage seconds come with its last
    bucket (empty dicts before), so a sum over buckets counts each call once."""
    for call in calls:
        last = len(call.buckets) - 1
        for n, (bucket, samples) in enumerate(call.buckets):
            yield bucket, samples, call.timings if n == last else {}
