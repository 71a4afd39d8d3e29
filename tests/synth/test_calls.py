"""synth/calls.py's CallRunner: segments written in a thread, calls overlapped on a device.

A fake backend records what the runner asks of it, and when; segments go to a real
job folder. No voice and no model: the torch backend's side is in
tests/backends/test_torch_overlap.py.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from voicekit.backends.base import Utterance, call_results
from voicekit.errors import JobError
from voicekit.synth.calls import CallRunner, Group, bucket_results, run_calls
from voicekit.synth.job import Job, read_segment
from voicekit.text.sentences import Bucket

HOP = 100


def _bucket(k: int, sentences: int = 2) -> Bucket:
    return Bucket(
        index=k,
        id=f"c000-p{k:04d}-0",
        chapter=0,
        paragraph=k,
        part=0,
        sentences=tuple(f"s{k}-{i}" for i in range(sentences)),
        hash=f"{k:016x}" + "0" * 48,
    )


def _groups(calls: int, buckets: int = 2, sentences: int = 2) -> list[Group]:
    """``calls`` groups of ``buckets`` buckets; a sentence's ids give its audio's length."""
    groups: list[Group] = []
    for c in range(calls):
        group: Group = []
        for b in range(buckets):
            k = c * buckets + b
            utts: list[Utterance | None] = [
                Utterance(np.full(3 + k + i, k, np.int64), (0, k, i)) for i in range(sentences)
            ]
            utts[0] = None if k == 1 else utts[0]  # a sentence with nothing to say
            group.append((_bucket(k, sentences), utts))
        groups.append(group)
    return groups


def _audio(utt: Utterance) -> np.ndarray:
    """Deterministic audio of one sentence: its length and values follow its ids."""
    n = len(utt.ids) * HOP
    return (np.sin(np.arange(n, dtype=np.float32) * (1 + utt.key[1])) * 0.5).astype(np.float32)


class _Pending:
    def __init__(self, backend: _Backend, call: int, batch: Sequence[Utterance]) -> None:
        self.backend, self.call, self.batch = backend, call, batch

    def result(self) -> list[np.ndarray]:
        self.backend.log.append(("result", self.call))
        if self.backend.on_result is not None:
            self.backend.on_result(self.call)
        return [_audio(u) for u in self.batch]


class _Backend:
    """Records submit and result; ``overlaps_calls`` as a CUDA backend says it."""

    name = "fake"
    device = "cpu"
    batch_sentences = 4

    def __init__(self, overlaps: bool = True) -> None:
        self.overlaps_calls = overlaps
        self.log: list[tuple[str, int]] = []
        self.on_submit: object = None
        self.on_result: object = None

    def submit(self, batch: Sequence[Utterance]) -> _Pending:
        call = sum(1 for kind, _ in self.log if kind == "submit")
        self.log.append(("submit", call))
        if callable(self.on_submit):
            self.on_submit(call)
        return _Pending(self, call, batch)

    def synthesize(self, batch: Sequence[Utterance]) -> list[np.ndarray]:
        return self.submit(batch).result()

    def close(self) -> None:
        pass


class _Synthesizing:
    """A backend with ``synthesize`` only (as ort and openvino)."""

    name = "plain"
    device = "cpu"
    batch_sentences = 4

    def synthesize(self, batch: Sequence[Utterance]) -> list[np.ndarray]:
        return [_audio(u) for u in batch]

    def close(self) -> None:
        pass


def _serial(groups: list[Group], job: Job) -> dict[str, bytes]:
    """What the serial run_call of before wrote: each call synthesized, then its segments."""
    from voicekit.formats.wav import float_to_pcm16

    for group in groups:
        audio = iter(_Synthesizing().synthesize([u for _, us in group for u in us if u]))
        for bucket, utts in group:
            pieces = [
                float_to_pcm16(next(audio)) if u is not None else np.zeros(0, np.int16)
                for u in utts
            ]
            job.write(bucket.hash, np.concatenate(pieces), [len(p) for p in pieces])
    return {p.name: p.read_bytes() for p in sorted(job.segments.iterdir())}


def _writer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("voicekit-writer")]


def test_call_n_plus_one_is_submitted_before_call_n_is_taken(tmp_path: Path) -> None:
    backend = _Backend(overlaps=True)
    with Job.open(tmp_path / "job") as job:
        done = list(bucket_results(run_calls(backend, _groups(3), job.write)))
    assert backend.log == [
        ("submit", 0),
        ("submit", 1),
        ("result", 0),
        ("submit", 2),
        ("result", 1),
        ("result", 2),
    ]
    assert [b.index for b, _, _ in done] == list(range(6))  # book order


def test_without_overlap_each_call_is_taken_before_the_next_starts(tmp_path: Path) -> None:
    backend = _Backend(overlaps=False)  # as torch on the CPU, or a worker
    with Job.open(tmp_path / "job") as job:
        list(run_calls(backend, _groups(2), job.write))
    assert backend.log == [("submit", 0), ("result", 0), ("submit", 1), ("result", 1)]


@pytest.mark.parametrize("overlap", [True, False])
def test_segments_are_the_bytes_of_the_serial_path(tmp_path: Path, overlap: bool) -> None:
    groups = _groups(3, buckets=3, sentences=3)
    with Job.open(tmp_path / "serial") as job:
        serial = _serial(groups, job)
    with Job.open(tmp_path / "threaded") as job:
        done = list(bucket_results(run_calls(_Backend(overlap), groups, job.write)))
        threaded = {p.name: p.read_bytes() for p in sorted(job.segments.iterdir())}
    assert threaded == serial
    lengths = {b.hash: n for b, n, _ in done}
    for bucket, samples in lengths.items():
        segment = read_segment(tmp_path / "threaded", bucket)
        assert segment is not None and len(segment.pcm) == samples


def test_a_plain_backend_runs_through_synthesize(tmp_path: Path) -> None:
    groups = _groups(2)
    with Job.open(tmp_path / "serial") as job:
        serial = _serial(groups, job)
    with Job.open(tmp_path / "plain") as job:
        done = list(bucket_results(run_calls(_Synthesizing(), groups, job.write)))  # type: ignore[arg-type]
        assert {p.name: p.read_bytes() for p in sorted(job.segments.iterdir())} == serial
    timings = [t for _, _, t in done if t]
    assert len(timings) == 2 and all("synthesize" in t for t in timings)


def test_a_call_with_nothing_to_say_never_reaches_the_backend(tmp_path: Path) -> None:
    backend = _Backend()
    silent: Group = [(_bucket(9), [None, None])]
    groups = [_groups(1)[0], silent, _groups(2)[1]]
    with Job.open(tmp_path / "job") as job:
        done = list(bucket_results(run_calls(backend, groups, job.write)))
        assert read_segment(job.folder, _bucket(9).hash) is not None
    assert [b.index for b, _, _ in done] == [0, 1, 9, 2, 3]
    assert [(b.index, n) for b, n, _ in done if b.index == 9] == [(9, 0)]
    assert [e for e in backend.log if e[0] == "submit"] == [("submit", 0), ("submit", 1)]


def test_a_bucket_is_reported_only_once_its_segment_is_on_disk(tmp_path: Path) -> None:
    writers: set[str] = set()
    with Job.open(tmp_path / "job") as job:

        def slow_write(digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
            writers.add(threading.current_thread().name)
            time.sleep(0.05)
            job.write(digest, pcm, lengths)

        for bucket, samples, _ in bucket_results(run_calls(_Backend(), _groups(3), slow_write)):
            segment = read_segment(job.folder, bucket.hash)
            assert segment is not None and len(segment.pcm) == samples
    assert all(name.startswith("voicekit-writer") for name in writers)


def test_the_next_call_runs_while_the_last_is_written(tmp_path: Path) -> None:
    """Regression (issue 16, item 7): conversion and savez ran after each call, serially."""
    submitted = threading.Event()
    overlapped: list[bool] = []
    backend = _Backend(overlaps=False)
    backend.on_submit = lambda call: submitted.set() if call == 1 else None
    with Job.open(tmp_path / "job") as job:

        def write(digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
            if digest == _bucket(0).hash:  # call 0's first segment: call 1 starts meanwhile
                overlapped.append(submitted.wait(5.0))
            job.write(digest, pcm, lengths)

        list(run_calls(backend, _groups(2), write))
    assert overlapped == [True]


def test_the_writer_holds_at_most_one_call(tmp_path: Path) -> None:
    backend = _Backend(overlaps=True)
    written: list[int] = []  # calls whose every segment is written
    seen: list[tuple[int, int]] = []
    backend.on_result = lambda call: seen.append((call, len(written)))
    with Job.open(tmp_path / "job") as job:

        def slow_write(digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
            time.sleep(0.02)
            job.write(digest, pcm, lengths)

        for n, _done in enumerate(run_calls(backend, _groups(5), slow_write)):
            written.append(n)
    # When call k's audio is taken, every call before k-1 has been written (and reported):
    # at most k-1's audio waits for the writer, beside k's arriving.
    assert seen and all(reported >= call - 1 for call, reported in seen), seen


def test_checkpoint_seconds_are_the_writers_busy_time(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job") as job:

        def slow_write(digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
            time.sleep(0.03)
            job.write(digest, pcm, lengths)

        done = list(bucket_results(run_calls(_Backend(), _groups(3), slow_write)))
    timings = [t for _, _, t in done if t]
    assert len(timings) == 3  # one per call, on its last bucket
    assert [bool(t) for _, _, t in done] == [False, True] * 3
    assert sum(t["checkpoint"] for t in timings) >= 6 * 0.03


def _enospc_after(first: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """np.savez fails with a full disk after ``first`` segments."""
    real, calls = np.savez, [0]

    def savez(*args: object, **kwargs: object) -> None:
        calls[0] += 1
        if calls[0] > first:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(np, "savez", savez)


@pytest.mark.parametrize("overlap", [True, False])
def test_a_full_disk_in_the_writer_is_the_serial_paths_job_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overlap: bool
) -> None:
    _enospc_after(3, monkeypatch)  # call 0 (buckets 0, 1) and bucket 2 of call 1 fit
    reported: list[int] = []
    with Job.open(tmp_path / "job") as job:
        with pytest.raises(JobError) as caught:
            for bucket, _, _ in bucket_results(run_calls(_Backend(overlap), _groups(4), job.write)):
                reported.append(bucket.index)
        names = sorted(p.name for p in job.segments.iterdir())
    assert caught.value.exit_code == 7
    assert "cannot write the job folder" in caught.value.message
    assert caught.value.hint == "the disk is full: free some space; finished buckets are kept"
    assert reported == [0, 1]  # bucket 2 is written, but its call is not: not reported
    assert names == [f"{_bucket(k).hash}.npz" for k in range(3)]  # no later segment, no temp
    assert not _writer_threads()


def test_a_run_closed_after_a_reported_call_leaves_the_calls_reported(tmp_path: Path) -> None:
    """A closed run (Ctrl-C between events, an error in the caller) has written what it
    reported, as the serial path had: the next call's audio is not yet with the writer."""
    with Job.open(tmp_path / "job") as job:
        calls = run_calls(_Backend(), _groups(6, buckets=3), job.write)
        first = next(calls)
        calls.close()
        assert not _writer_threads()
        assert sorted(p.stem for p in job.segments.iterdir()) == sorted(
            b.hash for b, _ in first.buckets
        )


def test_an_interrupt_while_a_call_runs_waits_for_the_segment_being_written(
    tmp_path: Path,
) -> None:
    backend = _Backend()
    writing = threading.Event()

    def interrupt(call: int) -> None:
        if call == 2:  # call 0 is with the writer now
            assert writing.wait(5.0)
            raise KeyboardInterrupt

    backend.on_submit = interrupt
    job = Job.open(tmp_path / "job")

    def slow_write(digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
        writing.set()
        time.sleep(0.1)
        job.write(digest, pcm, lengths)

    with job, pytest.raises(KeyboardInterrupt), CallRunner(backend, slow_write) as runner:
        for group in _groups(4, buckets=3):
            list(runner.submit(group))
    assert not _writer_threads()  # closed: the write under way finished, the rest dropped
    segments = sorted(job.segments.iterdir())
    assert 1 <= len(segments) < 3  # call 0's first segment, whole; not all of call 0
    assert all(p.suffix == ".npz" and read_segment(job.folder, p.stem) for p in segments)


@pytest.mark.parametrize("overlaps", [True, False])
def test_the_bench_runs_calls_as_the_pipeline_does(overlaps: bool) -> None:
    backend = _Backend(overlaps=overlaps)
    batches = [[u for _, us in g for u in us if u] for g in _groups(3)]
    audio = list(call_results(backend, batches))  # type: ignore[arg-type]
    assert [len(a) for a in audio] == [len(b) for b in batches]
    if overlaps:
        assert backend.log[:3] == [("submit", 0), ("submit", 1), ("result", 0)]
    else:
        assert backend.log[:3] == [("submit", 0), ("result", 0), ("submit", 1)]
