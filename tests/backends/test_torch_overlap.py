"""Calls that overlap (issue 16, item 3): call N+1 submitted before call N's audio is taken.

On CUDA that puts N+1's durations beside N's flow and decoder. The CPU runs the same
packed calls (batch_size > 1) without streams: these tests hold the bytes, the order
of submit and result, and that every tensor the vocoder stream reads from the
acoustic stream is handed over (record_stream on CUDA, which no test here can run).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tests.backends.audio import utterances  # noqa: E402
from voicekit.backends.torch import backend as backend_mod  # noqa: E402
from voicekit.backends.torch import packed  # noqa: E402
from voicekit.backends.torch.backend import TorchBackend  # noqa: E402
from voicekit.backends.torch.transfer import QueuedCall  # noqa: E402
from voicekit.backends.torch.weights import VoiceWeights, load_weights  # noqa: E402
from voicekit.backends.voices import Voice  # noqa: E402
from voicekit.formats.wav import float_to_pcm16  # noqa: E402
from voicekit.settings import SynthSettings  # noqa: E402
from voicekit.synth import calls as calls_mod  # noqa: E402
from voicekit.synth.calls import Group, bucket_results, run_calls  # noqa: E402
from voicekit.synth.job import Job, read_segment  # noqa: E402
from voicekit.synth.pipeline import RunOptions, Synthesizer  # noqa: E402
from voicekit.text.model import Book, BookMeta, Chapter  # noqa: E402
from voicekit.text.sentences import Bucket  # noqa: E402

# Short first, so packing (longest first) reorders each call's sentences.
CALLS = [
    ["Oh dear!", "Alice was beginning to get very tired of sitting by her sister."],
    ["Why not?", "There was nothing so very remarkable in that, she thought."],
    ["Yes.", "So she was considering in her own mind what to do next."],
]
PACKED = SynthSettings(device="cpu", threads=1, chunk_frames=0, batch_size=2)


@pytest.fixture(scope="module")
def weights(bundled_voice: Voice) -> VoiceWeights:
    return load_weights(bundled_voice.model_path, bundled_voice.config)


@pytest.fixture(scope="module")
def backend(bundled_voice: Voice, weights: VoiceWeights) -> Any:
    b = TorchBackend(bundled_voice, PACKED, "cpu", weights=weights)
    assert b.packing and not b.overlaps_calls  # the packed policy; the CPU does not overlap
    yield b
    b.close()


def _groups(voice: Voice) -> list[Group]:
    groups: list[Group] = []
    for c, sentences in enumerate(CALLS):
        bucket = Bucket(c, f"c000-p{c:04d}-0", 0, c, 0, tuple(sentences), f"{c:016x}" + "0" * 48)
        groups.append([(bucket, list(utterances(voice, sentences, 7, c)))])
    return groups


def _segments(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / "segments").iterdir())}


def test_overlapped_calls_give_the_bytes_of_calls_in_turn(
    tmp_path: Path, bundled_voice: Voice, backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    groups = _groups(bundled_voice)
    with Job.open(tmp_path / "serial") as job:  # what run_call did: synthesize, then write
        for group in groups:
            audio = iter(backend.synthesize([u for _, utts in group for u in utts if u]))
            for bucket, utts in group:
                pieces = [float_to_pcm16(next(audio)) for _ in utts]
                job.write(bucket.hash, np.concatenate(pieces), [len(p) for p in pieces])
    log: list[str] = []
    real_submit, real_result = TorchBackend.submit, QueuedCall.result

    def submit(self: TorchBackend, batch: Any) -> QueuedCall:
        n = sum(1 for e in log if e.startswith("submit"))
        log.append(f"submit {n}")
        call = real_submit(self, batch)
        call.n = n  # type: ignore[attr-defined]
        return call

    def result(self: QueuedCall) -> list[np.ndarray]:
        log.append(f"result {self.n}")  # type: ignore[attr-defined]
        return real_result(self)

    monkeypatch.setattr(TorchBackend, "submit", submit)
    monkeypatch.setattr(QueuedCall, "result", result)
    with Job.open(tmp_path / "overlap") as job:
        done = list(bucket_results(run_calls(backend, groups, job.write, overlap=True)))
    assert log == ["submit 0", "submit 1", "result 0", "submit 2", "result 1", "result 2"]
    assert [b.index for b, _, _ in done] == [0, 1, 2]
    assert _segments(tmp_path / "overlap") == _segments(tmp_path / "serial")
    for bucket, samples, _ in done:  # each call's sentences back in their own order
        segment = read_segment(tmp_path / "overlap", bucket.hash)
        assert segment is not None and len(segment.pcm) == samples
        short, long = segment.lengths
        assert short < long


def test_everything_the_vocoder_stream_reads_from_durations_is_handed_over(
    bundled_voice: Voice, backend: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On CUDA the duration outputs are made on the acoustic stream and read by ``expand``
    on the vocoder stream while the next call's durations allocate: without record_stream
    the allocator could give their memory away. Every tensor expand reads is handed over."""
    handed: list[tuple[Any, str]] = []  # kept alive: their storages stay distinct
    read: list[int] = []
    real_hand_over, real_expand = TorchBackend.hand_over, packed.expand

    def hand_over(self: TorchBackend, tensors: Any, stage: str) -> None:
        tensors = list(tensors)
        handed.extend((t, stage) for t in tensors)
        real_hand_over(self, tensors, stage)

    def expand(w_ceil: Any, m_p: Any, logs_p: Any, frames: Any) -> Any:
        read.extend(t.untyped_storage().data_ptr() for t in (w_ceil, m_p, logs_p))
        return real_expand(w_ceil, m_p, logs_p, frames)

    monkeypatch.setattr(TorchBackend, "hand_over", hand_over)
    monkeypatch.setattr(packed, "expand", expand)
    utts = [u for group in _groups(bundled_voice) for _, us in group for u in us if u]
    backend.submit(utts).result()
    to_vocoder = {t.untyped_storage().data_ptr() for t, stage in handed if stage == "vocoder"}
    assert read and set(read) <= to_vocoder


@pytest.mark.slow  # two runs of a short book through the torch backend
def test_a_book_made_with_overlapped_calls_is_the_book_made_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Calls of two sentences, so the book takes several of them.
    monkeypatch.setattr(backend_mod, "PACK_SENTENCES_PER_CALL", 2)
    book = Book(
        BookMeta(title="Test"),
        [Chapter(1, "One", [" ".join(CALLS[0]), " ".join(CALLS[1])]), Chapter(2, "Two", CALLS[2])],
    )
    settings = PACKED.replace(
        backend="torch", workers=1, sentence_silence=0.1, paragraph_silence=0.2
    )  # in process: workers never overlap calls
    synth = Synthesizer(settings)
    plan = synth.plan(book)
    outputs = {}
    order: list[str] = []
    real_submit, real_result = TorchBackend.submit, QueuedCall.result
    monkeypatch.setattr(
        TorchBackend, "submit", lambda s, b: order.append("submit") or real_submit(s, b)
    )
    monkeypatch.setattr(QueuedCall, "result", lambda s: order.append("result") or real_result(s))
    try:
        for overlap in (False, True):
            monkeypatch.setattr(calls_mod, "overlaps_calls", lambda b, on=overlap: on)
            order.clear()
            out = tmp_path / f"overlap-{overlap}.wav"
            events = list(synth.run(plan, out, RunOptions(job_dir=tmp_path / f"job-{overlap}")))
            assert events[-1].result is not None
            outputs[overlap] = out.read_bytes()
            calls = order.count("submit")
            assert calls >= 3
            pairs = ["submit", "result"] * calls
            overlapped = ["submit", *(["submit", "result"] * (calls - 1)), "result"]
            assert order == (overlapped if overlap else pairs)
    finally:
        synth.close()
    assert outputs[True] == outputs[False]
