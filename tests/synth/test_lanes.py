"""synth/lanes.py: ``--workers`` as threads over one onnxruntime voice."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from voicekit.backends.base import Utterance
from voicekit.backends.ort import OrtBackend
from voicekit.errors import JobError
from voicekit.settings import SynthSettings
from voicekit.synth.lanes import Lanes, runs_in_lanes
from voicekit.synth.plan import build_plan
from voicekit.text.model import Book, BookMeta, Chapter
from voicekit.text.sentences import Bucket

PARAGRAPHS = [f"Paragraph {n} is short." for n in range(1, 9)]


def _buckets(voice: Any) -> list[Bucket]:
    book = Book(BookMeta(title="Lanes"), [Chapter(1, "One", PARAGRAPHS)])
    plan = build_plan(book, SynthSettings(), language=voice.language, fingerprint="lanes")
    return list(plan.buckets)


class _Backend:
    """Stands in for OrtBackend: one sample per phoneme; ``fail`` raises on every call
    starting with that sentence index, ``hold`` blocks a lane until it is stopped."""

    batch_sentences = 1

    def __init__(self, fail: int | None = None, hold: bool = False) -> None:
        self.fail = fail
        self.hold = hold
        self.stopped = threading.Event()
        self.views: list[_Backend] = []
        self.running = threading.Event()

    def lane(self) -> _Backend:
        view = _Backend(self.fail, self.hold)
        view.running = self.running
        self.views.append(view)
        return view

    def stop(self) -> None:
        self.stopped.set()

    def synthesize(self, batch: Sequence[Utterance]) -> list[np.ndarray]:
        self.running.set()
        if self.hold:
            self.stopped.wait(30)
            raise RuntimeError("terminated")  # as onnxruntime does when told to stop
        if self.fail is not None and batch[0].key[2] == self.fail:
            raise JobError("disk full")
        return [np.zeros(len(u.ids), np.float32) for u in batch]


def _writer(into: dict[str, np.ndarray]) -> Any:
    lock = threading.Lock()

    def write(digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
        with lock:
            into[digest] = pcm

    return write


def test_onnxruntime_on_the_cpu_runs_in_threads_the_others_in_processes() -> None:
    assert runs_in_lanes("ort", "cpu")
    assert not runs_in_lanes("ort", "cuda:0")
    assert not runs_in_lanes("torch", "cpu")
    assert not runs_in_lanes("openvino", "cpu")


def test_every_bucket_is_made_once_whatever_lane_makes_it(bundled_voice: Any) -> None:
    buckets = _buckets(bundled_voice)
    written: dict[str, np.ndarray] = {}
    backend = _Backend()
    with Lanes(backend, bundled_voice, 7, _writer(written), 3) as lanes:
        made = list(lanes.results(buckets))
    assert len(backend.views) == 3
    assert sorted(b.hash for b, _, _ in made) == sorted(b.hash for b in buckets)
    assert set(written) == {b.hash for b in buckets}
    for bucket, samples, _timings in made:
        assert samples == len(written[bucket.hash])
    calls = [t for _, _, t in made if t]
    assert len(calls) == len(buckets)  # a call a bucket on the CPU, each call's timings once
    assert all(t["phonemize"] > 0 for t in calls)


def test_a_lane_that_fails_stops_the_run_with_its_own_error(bundled_voice: Any) -> None:
    buckets = _buckets(bundled_voice)
    backend = _Backend(fail=0)
    with pytest.raises(JobError, match="disk full"), Lanes(
        backend, bundled_voice, 7, _writer({}), 2
    ) as lanes:
        list(lanes.results(buckets))
    assert all(view.stopped.is_set() for view in backend.views)


def test_stopping_ends_the_lanes_in_the_middle_of_a_call(bundled_voice: Any) -> None:
    buckets = _buckets(bundled_voice)
    backend = _Backend(hold=True)
    lanes = Lanes(backend, bundled_voice, 7, _writer({}), 2)
    results = lanes.results(buckets)
    # what Ctrl-C or an error does, here from another thread while the run waits
    stopper = threading.Thread(target=lambda: (backend.running.wait(10), lanes.close()))
    stopper.start()
    assert list(results) == []  # nothing finished; the lanes ended quietly
    stopper.join()
    assert all(view.stopped.is_set() for view in backend.views)
    assert not [t for t in threading.enumerate() if t.name.startswith("voicekit-lane")]


@pytest.mark.slow
def test_a_lane_shares_the_sessions_and_stops_alone(bundled_voice: Any) -> None:
    backend = OrtBackend(bundled_voice, SynthSettings(threads=1), "cpu")
    utt = Utterance(np.asarray(bundled_voice.phoneme_ids("The tide turned."), np.int64), (1, 2, 3))
    one, two = backend.lane(), backend.lane()
    assert one.acoustic._encoder is backend.acoustic._encoder  # one copy of the weights
    assert one.vocoder._staged is two.vocoder._staged
    (want,) = backend.synthesize([utt])
    (got,) = one.synthesize([utt])
    assert np.array_equal(want, got)
    assert set(one.take_timings()) == {"acoustic", "vocoder"}
    assert backend.take_timings() and not two.take_timings()  # each keeps its own
    one.stop()
    with pytest.raises(Exception, match=r"(?i)terminat"):
        one.synthesize([utt])
    (again,) = two.synthesize([utt])  # the other lane, and the backend, go on
    assert np.array_equal(again, want)
    assert np.array_equal(backend.synthesize([utt])[0], want)
