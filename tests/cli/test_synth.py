"""The synth command: outputs, summaries, and every bad input as one line and an exit code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicekit.cli.main import app
from voicekit.cli.synth import ViewMode, _summary
from voicekit.synth.progress import RunResult

FAST = ["--device", "cpu", "--backend", "ort", "--sentence-silence", "0.1",
        "--paragraph-silence", "0.2", "--chapter-silence", "0.3"]


def invoke(*args: str, input: bytes | str | None = None):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), input=input)


def one_line_error(result, code: int, text: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and lines[0].startswith("error: "), result.stderr
    assert text in lines[0]
    assert len([line for line in lines if line.startswith("error: ")]) == 1
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("Hello there. This is a test.\n\nA second paragraph.\n", encoding="utf-8")
    return path


# --- bad input: one line on stderr, a documented exit code --------------------------
def test_missing_input(tmp_path: Path) -> None:
    one_line_error(invoke("synth", str(tmp_path / "none.txt"), *FAST), 2, "input not found")


def test_empty_and_blank_input(tmp_path: Path) -> None:
    for name, data in (("empty.txt", ""), ("blank.txt", " \n\n \t")):
        (tmp_path / name).write_text(data)
        one_line_error(invoke("synth", str(tmp_path / name), *FAST), 2, "has no text to read")


def test_non_utf8_input(tmp_path: Path) -> None:
    (tmp_path / "l1.txt").write_bytes("na\xefve caf\xe9".encode("latin-1"))
    one_line_error(invoke("synth", str(tmp_path / "l1.txt"), *FAST), 2, "is not UTF-8 text")


def test_unknown_output_extension(notes: Path, tmp_path: Path) -> None:
    one_line_error(invoke("synth", str(notes), "-o", str(tmp_path / "x.xyz"), *FAST), 2,
                   "unknown output extension '.xyz'")


def test_unwritable_output_folder(notes: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    one_line_error(invoke("synth", str(notes), "-o", str(blocker / "out.wav"), *FAST), 3,
                   "cannot write to")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(notes: Path, tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        one_line_error(invoke("synth", str(notes), "-o", str(folder / "o.wav"), *FAST), 3,
                       "cannot write to")
    finally:
        folder.chmod(0o700)


def test_missing_voice_file(notes: Path, tmp_path: Path) -> None:
    one_line_error(invoke("synth", str(notes), "--voice", str(tmp_path / "v.onnx"), *FAST), 4,
                   "voice file not found")


def test_voice_without_its_json(notes: Path, tmp_path: Path) -> None:
    (tmp_path / "v.onnx").write_bytes(b"not really")
    one_line_error(invoke("synth", str(notes), "--voice", str(tmp_path / "v.onnx"), *FAST), 4,
                   "voice config not found")


def test_cuda_without_cuda(notes: Path) -> None:
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    one_line_error(invoke("synth", str(notes), "--device", "cuda", "--backend", "ort"), 5,
                   "CUDA is not usable here")


def test_bad_option_values(notes: Path) -> None:
    one_line_error(invoke("synth", str(notes), "--bucket-size", "0", *FAST), 2,
                   "bucket-size = 0 must be at least 1")
    one_line_error(invoke("synth", str(notes), "--device", "gpu9"), 2, "device = 'gpu9'")


def test_existing_output_is_kept(notes: Path, tmp_path: Path) -> None:
    out = tmp_path / "o.wav"
    out.write_bytes(b"keep me")
    one_line_error(invoke("synth", str(notes), "-o", str(out), *FAST), 3, "use --force")
    assert out.read_bytes() == b"keep me"


def test_stdin_needs_an_output() -> None:
    one_line_error(invoke("synth", "-", *FAST, input="Hi."), 2, "needs -o/--output")


# --- good runs -----------------------------------------------------------------------
@pytest.mark.slow
def test_stdin_to_wav_with_json_summary(tmp_path: Path) -> None:
    out = tmp_path / "chapter.wav"
    result = invoke("synth", "-", "-o", str(out), "--json", *FAST,
                    input="# Title\n\nHello from *standard input*.\n")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["output"] == str(out) and summary["buckets_resumed"] == 0
    for key in ("audio_seconds", "wall_seconds", "rtf", "x_realtime", "peak_rss_mb"):
        assert summary[key] > 0
    assert summary["buckets"] == summary["buckets_synthesized"] == 2
    with wave.open(str(out)) as w:
        assert w.getnframes() / w.getframerate() == pytest.approx(summary["audio_seconds"],
                                                                 abs=0.01)


@pytest.mark.slow
def test_quiet_prints_nothing_and_plain_lines_otherwise(notes: Path, tmp_path: Path) -> None:
    quiet = invoke("synth", str(notes), "-o", str(tmp_path / "q.wav"), "--quiet", *FAST)
    assert quiet.exit_code == 0 and quiet.stdout == "" and quiet.stderr == ""
    plain = invoke("synth", str(notes), "-o", str(tmp_path / "p.wav"), *FAST)
    assert plain.exit_code == 0
    assert "buckets" in plain.stderr and "wrote" in plain.stderr
    assert "\x1b[" not in plain.stderr  # not a terminal: no live panel, no escape codes


@pytest.mark.slow
def test_bracketed_names_are_printed_as_they_are(notes: Path, tmp_path: Path) -> None:
    # "[v2]" would be taken for rich markup and vanish from the summary
    output = tmp_path / "notes [v2] [bold].wav"
    result = invoke("synth", str(notes), "-o", str(output), *FAST)
    assert result.exit_code == 0, result.stderr
    assert f"wrote {output}:" in result.stderr


def test_summary_prints_bracketed_output_names_as_they_are(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # the fast half of the test above: "[/b]" would even raise as markup
    output = "notes [v2] [/b].wav"
    result = RunResult(
        output=output, format="wav", audio_seconds=61.0, wall_seconds=3.0, synth_seconds=2.0,
        rtf=0.05, peak_rss_mb=300.0, mean_rss_mb=250.0, peak_gpu_mb=None, buckets=4,
        buckets_synthesized=1, buckets_resumed=2, buckets_repeated=1, device="cpu",
        backend="ort", chapters=1, job_dir=None)
    _summary(result, ViewMode())
    assert capsys.readouterr().err == (
        f"wrote {output}: 01:01 of audio in 00:03, 20.0x real time; 1 bucket synthesized, "
        "2 resumed, 1 repeated; peak memory 300 MB\n")


@pytest.mark.slow
def test_default_output_sits_beside_the_input(notes: Path) -> None:
    result = invoke("synth", str(notes), "--quiet", *FAST)
    assert result.exit_code == 0, result.stderr
    assert notes.with_suffix(".wav").is_file()


# --- killed mid-way, resumed: the same audio as an uninterrupted run ----------------
@pytest.mark.slow
def test_sigkill_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    text = tmp_path / "book.md"
    paragraphs = [f"Paragraph {i}. The tide came in over the sand, slow and grey, "
                  f"and the gulls cried above the harbour wall." for i in range(14)]
    text.write_text("# One\n\n" + "\n\n".join(paragraphs[:7]) + "\n\n# Two\n\n"
                    + "\n\n".join(paragraphs[7:]) + "\n", encoding="utf-8")
    killed = tmp_path / "killed.wav"
    cmd = [sys.executable, "-m", "voicekit", "synth", str(text), "-o", str(killed), "--quiet",
           "--bucket-size", "1", *FAST]
    env = {**os.environ, "VOICEKIT_CACHE": os.environ["VOICEKIT_CACHE"]}
    proc = subprocess.Popen(cmd, env=env)
    segments = tmp_path / "killed.wav.voicekit-job" / "segments"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(segments.glob("*.npz"))) < 4:
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed")
        time.sleep(0.05)
    import psutil

    workers = psutil.Process(proc.pid).children(recursive=True)  # ffmpeg; torch's workers
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # a worker may finish the bucket in hand before it sees its parent gone: count after
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "workers outlived the killed run"
    done_before = len(list(segments.glob("*.npz")))
    assert done_before >= 4
    import numpy as np

    longest = max(len(np.load(p)["pcm"]) for p in segments.glob("*.npz"))
    tide_done = longest > 2.5 * 22050  # "Paragraph i." and a heading say under a second
    assert not killed.exists()  # no half-written audiobook

    resumed = subprocess.run([*cmd[:-len(FAST)], "--json", *FAST], env=env,
                             capture_output=True, text=True, check=True)
    summary = json.loads(resumed.stdout)
    # 30 buckets: 2 headings, 14 "Paragraph i." and 14 copies of one tide sentence, so 17
    # distinct texts. The tide sentence is the third to start; if it was finished, all 14
    # of its copies count as resumed; if not (workers finish calls out of order, and it is
    # the longest), it is made once and its 13 other copies are repeats.
    assert summary["buckets"] == 30
    assert summary["buckets_resumed"] == (done_before - 1 + 14 if tide_done else done_before)
    assert summary["buckets_synthesized"] == 17 - done_before
    assert summary["buckets_repeated"] == (0 if tide_done else 13)

    fresh = tmp_path / "fresh.wav"
    subprocess.run([*cmd[:6], str(fresh), *cmd[7:]], env=env, check=True)
    assert killed.read_bytes() == fresh.read_bytes()
