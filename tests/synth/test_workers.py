"""``--workers N``: synthesis in N processes (or threads, synth/lanes.py) gives the same
bytes, and fails cleanly."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from voicekit.errors import InputError, SynthesisError
from voicekit.settings import SynthSettings
from voicekit.synth.calls import backend_threads, group_calls
from voicekit.synth.job import Job, read_segment
from voicekit.synth.lanes import Lanes
from voicekit.synth.pipeline import RunOptions, Synthesizer
from voicekit.synth.progress import Progress, RunResult
from voicekit.synth.workers import (
    CHARS_PER_WORKER,
    LANE_MB,
    MAX_AUTO,
    WORKER_MB,
    WorkerPool,
    auto_workers,
    feed,
    phonemizer_count,
    worker_count,
)
from voicekit.text.model import Book, BookMeta, Chapter
from voicekit.text.sentences import Bucket

# Six paragraphs of one or two sentences: six buckets, so six calls on the CPU.
PARAGRAPHS = [
    "The boats came in at dusk.",
    "Gulls cried over the harbour wall. The tide was turning.",
    "Nobody spoke on the quay.",
    "A lamp was lit in the harbour master's window.",
    "Rain came later. It did not stop until morning.",
    "By then the boats had gone.",
]


def _book() -> Book:
    return Book(BookMeta(title="Harbour"), [Chapter(1, "One", PARAGRAPHS)])


def _run(settings: SynthSettings, out: Path, **kw: object) -> tuple[RunResult, list[Progress]]:
    synth = Synthesizer(settings)
    events = list(synth.run(synth.plan(_book()), out, RunOptions(**kw)))  # type: ignore[arg-type]
    result = events[-1].result
    assert result is not None
    return result, events


def _segments(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("segments/*.npz"))}


@pytest.mark.slow
def test_two_workers_give_the_bytes_of_one(
    tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    one, _ = _run(cpu_settings.replace(workers=1), tmp_path / "one.wav", keep_work=True)
    two, events = _run(cpu_settings.replace(workers=2), tmp_path / "two.wav", keep_work=True)
    assert (one.workers, two.workers) == (1, 2)
    assert (tmp_path / "one.wav").read_bytes() == (tmp_path / "two.wav").read_bytes()
    assert _segments(Path(one.job_dir or "")) == _segments(Path(two.job_dir or ""))
    assert len(_segments(Path(two.job_dir or ""))) == two.buckets == len(PARAGRAPHS) + 1
    synth = [e for e in events if e.phase == "synth"]
    assert [e.buckets_done for e in synth] == list(range(1, two.buckets + 1))
    # the workers' stage seconds reach the summary (phonemizing runs in them too)
    assert {"phonemize", "acoustic", "vocoder", "checkpoint"} <= set(two.stage_busy)
    assert min(two.stage_busy[s] for s in ("phonemize", "acoustic", "vocoder")) > 0
    assert sum(two.stages.values()) == pytest.approx(two.wall_seconds, rel=0.1)

    # Calls that finish out of order (the last first) make the same file.
    real = Lanes.results  # onnxruntime on the CPU: the workers are threads

    def backwards(self: Lanes, pending: list[Bucket]) -> Iterator[object]:
        yield from reversed(list(real(self, pending)))

    monkeypatch.setattr(Lanes, "results", backwards)
    late, events = _run(cpu_settings.replace(workers=2), tmp_path / "late.wav")
    assert (tmp_path / "late.wav").read_bytes() == (tmp_path / "one.wav").read_bytes()
    assert late.buckets_synthesized == late.buckets
    synth = [e for e in events if e.phase == "synth"]
    assert synth[0].bucket_id != synth[-1].bucket_id
    assert synth[-1].audio_seconds == pytest.approx(one.audio_seconds, abs=0.01)


def _job(tmp_path: Path, settings: SynthSettings) -> tuple[Synthesizer, list[Bucket], Job]:
    synth = Synthesizer(settings)
    plan = synth.plan(_book())
    return synth, list(plan.buckets), Job.open(tmp_path / "job")


def _pool(synth: Synthesizer, job: Job, workers: int = 2) -> WorkerPool:
    choice = synth.choice
    return WorkerPool(synth.voice, synth.settings, choice.device, choice.backend, job.folder,
                      workers)  # fmt: skip


@pytest.mark.slow
def test_worker_processes_write_the_segments_of_the_in_process_path(
    tmp_path: Path, cpu_settings: SynthSettings
) -> None:
    one, _ = _run(cpu_settings.replace(workers=1), tmp_path / "one.wav", keep_work=True)
    synth, buckets, job = _job(tmp_path, cpu_settings)
    made = []
    with job, _pool(synth, job) as pool:
        pool.start()
        made = [bucket.hash for bucket, _samples, _timings in pool.results(buckets)]
    assert sorted(made) == sorted(b.hash for b in buckets)
    assert _segments(job.folder) == _segments(Path(one.job_dir or ""))


@pytest.mark.slow
def test_a_killed_worker_stops_the_run_with_one_line_and_keeps_finished_buckets(
    tmp_path: Path, cpu_settings: SynthSettings
) -> None:
    synth, buckets, job = _job(tmp_path, cpu_settings)
    finished: list[str] = []
    with job, pytest.raises(SynthesisError) as caught, _pool(synth, job) as pool:
        pool.start()
        for bucket, _samples, _timings in pool.results(buckets):
            finished.append(bucket.hash)
            if len(finished) == 1:
                os.kill(pool._procs[0].pid, signal.SIGKILL)
    assert "synthesis worker 0 was killed by signal 9" in str(caught.value)
    assert "finished buckets are kept" in (caught.value.hint or "")
    assert 1 <= len(finished) < len(buckets)
    for digest in finished:
        assert read_segment(job.folder, digest) is not None
    assert not any(p.is_alive() for p in pool._procs)


@pytest.mark.slow
def test_stopping_the_run_ends_the_workers_at_once(
    tmp_path: Path, cpu_settings: SynthSettings
) -> None:
    synth, _buckets, job = _job(tmp_path, cpu_settings)
    with job, pytest.raises(KeyboardInterrupt), _pool(synth, job) as pool:
        pool.start()
        procs = list(pool._procs)
        began = time.monotonic()
        raise KeyboardInterrupt  # what Ctrl-C raises in the main process
    assert time.monotonic() - began < 5
    assert procs and not any(p.is_alive() for p in procs)


def test_a_worker_that_fails_to_load_says_why(tmp_path: Path, cpu_settings: SynthSettings) -> None:
    synth, _buckets, job = _job(tmp_path, cpu_settings)
    pool = WorkerPool(synth.voice, synth.settings, "cpu", "no-such-backend", job.folder, 2)
    with job, pytest.raises(InputError, match=r"synthesis worker \d: unknown backend"), pool:
        pool.start()


def test_auto_runs_one_process_per_core_on_the_cpu_and_one_on_cuda() -> None:
    plenty = 64 * 1024
    assert auto_workers("cpu", cores=2, free_mb=plenty) == 2
    assert auto_workers("cpu", cores=1, free_mb=plenty) == 1
    assert auto_workers("cpu", cores=64, free_mb=plenty) == MAX_AUTO
    assert auto_workers("cpu", cores=8, free_mb=3 * WORKER_MB) == 3  # as many as RAM holds
    assert auto_workers("cpu", cores=8, free_mb=100) == 1
    assert auto_workers("cuda:0", cores=16, free_mb=plenty) == 1
    # threads over one voice need only their activations
    assert auto_workers("cpu", cores=8, free_mb=3 * WORKER_MB, each_mb=LANE_MB) == 6


def test_worker_count_never_exceeds_the_calls_and_keeps_cuda_in_one_process() -> None:
    settings = SynthSettings(workers=4)
    assert worker_count(settings, "cpu", calls=10) == 4
    assert worker_count(settings, "cpu", calls=2) == 2
    assert worker_count(settings, "cpu", calls=1) == 1  # in-process: no process to start
    assert worker_count(settings, "cuda:0", calls=10) == 1
    assert worker_count(SynthSettings(workers=1), "cpu", calls=10) == 1


def test_auto_starts_no_worker_a_short_text_cannot_pay_for(monkeypatch: pytest.MonkeyPatch) -> None:
    # a sentence read in two processes took 2.4-2.6 s, in process 1.9-2.2 s
    monkeypatch.setattr("voicekit.synth.workers.auto_workers", lambda device, each_mb: 4)
    auto = SynthSettings()
    assert worker_count(auto, "cpu", calls=10, chars=75) == 1
    assert worker_count(auto, "cpu", calls=10, chars=2 * CHARS_PER_WORKER) == 2
    assert worker_count(auto, "cpu", calls=10, chars=100 * CHARS_PER_WORKER) == 4
    assert worker_count(SynthSettings(workers=3), "cpu", calls=10, chars=75) == 3  # as told
    # threads (synth/lanes.py) cost nothing to start: the cores, up to the calls
    assert worker_count(auto, "cpu", calls=10, chars=75, processes=False) == 4
    assert worker_count(auto, "cpu", calls=2, chars=75, processes=False) == 2


def test_calls_group_buckets_in_book_order_as_the_in_process_path_does() -> None:
    def bucket(n: int, k: int) -> Bucket:
        return Bucket(k, f"b{k}", 0, k, 0, tuple(f"s{i}" for i in range(n)), f"{k:064x}")

    buckets = [bucket(n, k) for k, n in enumerate([3, 2, 5, 1, 1, 1])]
    groups = [[b.index for b in g] for g in group_calls(buckets, per_call=4)]
    assert groups == [[0, 1], [2], [3, 4, 5]]
    singles = [[b.index for b in g] for g in group_calls(buckets, per_call=1)]
    assert singles == [[i] for i in range(6)]


def test_onnxruntime_on_the_cpu_runs_one_thread_per_process_unless_told() -> None:
    # its bytes would change with the thread count (see backend_threads)
    auto, told = SynthSettings(), SynthSettings(threads=4)
    assert backend_threads(auto, "cpu", "ort", workers=1) == 1
    assert backend_threads(auto, "cpu", "ort", workers=2) == 1
    assert backend_threads(told, "cpu", "ort", workers=2) == 2
    assert backend_threads(told, "cpu", "ort", workers=8) == 1
    assert backend_threads(auto, "cuda:0", "ort") >= 1
    # OpenVINO runs the same graphs on the CPU, under the same rule
    assert backend_threads(auto, "cpu", "openvino", workers=2) == 1
    assert backend_threads(told, "cpu", "openvino", workers=2) == 2


def test_workers_must_not_be_negative() -> None:
    with pytest.raises(InputError, match="workers"):
        SynthSettings(workers=-1).validate()


def test_cuda_runs_phonemize_in_processes_and_the_cpu_in_the_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("voicekit.synth.workers.physical_cores", lambda: 16)
    assert phonemizer_count(SynthSettings(), "cuda:0", buckets=100) == 4
    assert phonemizer_count(SynthSettings(workers=6), "cuda:0", buckets=100) == 6
    assert phonemizer_count(SynthSettings(workers=1), "cuda:0", buckets=100) == 1
    assert phonemizer_count(SynthSettings(), "cuda:0", buckets=2) == 2
    assert phonemizer_count(SynthSettings(workers=4), "cpu", buckets=100) == 1


@pytest.mark.slow
def test_phonemizer_processes_give_what_the_thread_gives(
    tmp_path: Path, cpu_settings: SynthSettings
) -> None:
    synth, buckets, job = _job(tmp_path, cpu_settings)
    job.close()
    by_thread = list(feed(synth.voice, buckets, 7, sentences=4, processes=1))
    by_processes = list(feed(synth.voice, buckets, 7, sentences=4, processes=2))
    assert [b.hash for b, _ in by_processes] == [b.hash for b in buckets]
    for (_, one), (_, two) in zip(by_thread, by_processes, strict=True):
        assert [u and (u.ids.tolist(), u.key) for u in one] == [
            u and (u.ids.tolist(), u.key) for u in two
        ]


_ORPHAN = """
import sys, time
from pathlib import Path
from voicekit.settings import SynthSettings
from voicekit.synth.job import Job
from voicekit.synth.pipeline import Synthesizer
from voicekit.synth.workers import WorkerPool

if __name__ == "__main__":
    synth = Synthesizer(SynthSettings(device="cpu", backend="ort"))
    job = Job.open(Path(sys.argv[1]))
    pool = WorkerPool(synth.voice, synth.settings, "cpu", "ort", job.folder, 2)
    pool.start()
    print(" ".join(str(p.pid) for p in pool._procs), flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_workers_end_when_the_main_process_is_killed(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "orphan.py"
    script.write_text(_ORPHAN, encoding="utf-8")
    main = subprocess.Popen([sys.executable, str(script), str(tmp_path / "job")],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert main.stdout is not None
    pids = [int(p) for p in main.stdout.readline().split()]
    assert len(pids) == 2
    main.kill()  # SIGKILL: no finally runs in the main process
    main.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_running(p) for p in pids):
        time.sleep(0.2)
    assert not any(_running(p) for p in pids)


def _running(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return status != "Z"  # a zombie has ended; init reaps it


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
@pytest.mark.parametrize(("backend", "processes"), [("ort", 0), ("torch", 2)])
def test_ctrl_c_from_the_terminal_stops_the_workers_and_says_one_line(
    tmp_path: Path, backend: str, processes: int
) -> None:
    # onnxruntime's workers are threads of the main process (synth/lanes.py); torch's
    # are processes
    if backend == "torch":
        pytest.importorskip("torch")
    import subprocess
    import sys

    import psutil

    import voicekit

    text = tmp_path / "story.txt"
    text.write_text("\n\n".join(PARAGRAPHS * 3) + "\n", encoding="utf-8")
    root = Path(voicekit.__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}
    cmd = [sys.executable, "-m", "voicekit", "synth", str(text), "-o", str(tmp_path / "out.wav"),
           "--device", "cpu", "--backend", backend, "--workers", "2"]  # fmt: skip
    # a session of its own: the signal goes to the whole group, as a terminal's Ctrl-C does
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip
    assert proc.stderr is not None
    for line in proc.stderr:
        if "buckets" in line:  # the first bucket is done: the workers are at work
            break
    children = psutil.Process(proc.pid).children()
    workers = [c for c in children if "spawn_main" in " ".join(c.cmdline())]
    assert len(workers) == processes
    os.killpg(proc.pid, signal.SIGINT)
    began = time.monotonic()
    _, stderr = proc.communicate(timeout=60)
    assert time.monotonic() - began < 10
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert [ln for ln in stderr.splitlines() if ln.startswith("error:")] == [
        "error: interrupted; finished work is kept, run the same command to resume"
    ], stderr
    assert not [w.pid for w in workers if _running(w.pid)]  # ended before the main process
    deadline = time.monotonic() + 5  # multiprocessing's resource tracker: once its pipe closes
    while time.monotonic() < deadline and any(_running(c.pid) for c in children):
        time.sleep(0.1)
    assert not [c.pid for c in children if _running(c.pid)]
