"""``--workers N`` for onnxruntime on the CPU: N threads over one loaded voice.

A worker process loads its own copy of Python, onnxruntime and the voice's
sessions: about 150 MB before any audio and 260 MB at work on harbour, so two
processes and the main one came to 650 MB where the Piper CLI needs 460 MB.
onnxruntime runs one session from several threads at once (``run`` releases the
GIL; the shared arena has its own lock), so here each lane is a thread that
takes the next call, phonemizes it (espeak-ng is locked: backends/voices.py),
runs it with one onnxruntime thread through a view of the one backend
(``OrtBackend.lane``) and writes its segments, as a worker process does. Two
lanes made the same bytes as one, 1.6-1.7x faster, at 384-404 MB for the whole
process (docs/BENCHMARKS.md, section 14.4).

Calls finish out of order, as the workers' do (segments are named by content
hash). Stopping (an error, Ctrl-C, a closed generator) sets every lane's
``RunOptions.terminate``, so a lane in the middle of a run ends within one
onnxruntime node, and waits for the lanes: no thread writes into the job after
the run lets it go.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

from voicekit.backends.voices import Voice
from voicekit.synth.calls import CallDone, CallRunner, Result, Writer, group_calls
from voicekit.synth.feed import bucket_utterances
from voicekit.system.devices import parse_device
from voicekit.text.sentences import Bucket

_POLL = 0.2  # seconds between the main thread's looks at the lanes
_END = "end"


def runs_in_lanes(backend: str, device: str) -> bool:
    """Whether ``--workers`` are threads of this process (onnxruntime on the CPU) rather
    than worker processes (synth/workers.py: torch, OpenVINO, and CUDA's phonemizers)."""
    return backend == "ort" and not parse_device(device).is_cuda


class Lanes:
    """N threads making calls of one backend: ``with`` it, then :meth:`results`.

    ``backend`` must have ``lane()`` (a view for one thread) and its views ``stop()``
    (backends/ort.py).
    """

    def __init__(self, backend: Any, voice: Voice, seed: int, write: Writer, lanes: int) -> None:
        self._backend = backend
        self._voice = voice
        self._seed = seed
        self._write = write
        self._views = [backend.lane() for _ in range(lanes)]
        self._done: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._stop = threading.Event()
        self._take = threading.Lock()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Lanes:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def results(self, pending: list[Bucket]) -> Generator[Result, None, None]:
        """Make every pending bucket; yield (bucket, samples, stage seconds) as each call ends.

        A call's stage seconds come with its last bucket (empty dicts with the others).
        """
        calls = group_calls(pending, max(1, self._backend.batch_sentences))
        for index, view in enumerate(self._views):
            thread = threading.Thread(
                target=self._lane, args=(view, calls), name=f"voicekit-lane-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        ended, started = 0, len(self._threads)
        try:
            while ended < started:
                try:
                    kind, payload = self._done.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise payload
                if kind == _END:
                    ended += 1
                    continue
                last = len(payload.buckets) - 1
                for n, (bucket, samples) in enumerate(payload.buckets):
                    yield bucket, samples, payload.timings if n == last else {}
        finally:
            self.close()

    def close(self) -> None:
        """Stop every lane (a run in progress ends within a node) and wait for them."""
        self._stop.set()
        for view in self._views:
            view.stop()
        for thread in self._threads:
            thread.join()
        self._threads = []

    def _next(self, calls: Iterator[list[Bucket]]) -> list[Bucket] | None:
        with self._take:  # one iterator, several lanes
            if self._stop.is_set():
                return None
            return next(calls, None)

    def _lane(self, view: Any, calls: Iterator[list[Bucket]]) -> None:
        try:
            # A call's segments are written before the lane takes the next call: the
            # other lanes keep the other cores busy meanwhile.
            with CallRunner(view, self._write, overlap=False) as runner:
                while (buckets := self._next(calls)) is not None:
                    began = time.perf_counter()
                    group = [(b, bucket_utterances(self._voice, b, self._seed)) for b in buckets]
                    phonemize = time.perf_counter() - began
                    for finished in [*runner.submit(group), *runner.drain()]:
                        self._report(finished, phonemize)
        except BaseException as exc:  # handed to the main thread, which raises it
            if not self._stop.is_set():  # else: onnxruntime's "terminated", asked for
                self._done.put(("error", exc))
        finally:
            self._done.put((_END, None))

    def _report(self, finished: CallDone, phonemize: float) -> None:
        finished.timings["phonemize"] = phonemize
        self._done.put(("done", finished))
