"""Issue 9, item 9: what a killed run leaves is cleaned up or reused, and ffmpeg dies with it.

The encode phase of a small book lasts a fraction of a second, so the killed runs use
an ffmpeg wrapper that adds ``-re`` (read the PCM at real-time speed): the same
encoder and the same bytes, only slow enough to be caught while it writes.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.reliability.helpers import FAST, cli_command, cli_env, invoke, one_line_error, write_text
from voicekit.formats.ffmpeg import find_ffmpeg
from voicekit.synth.job import Job

LONGER = "\n\n".join(
    f"# Part {i}\n\nThe tide came in over the sand, slow and grey. The gulls cried."
    for i in range(3)
) + "\n"


@pytest.fixture
def slow_ffmpeg(tmp_path: Path) -> Path:
    wrapper = tmp_path / "slow-ffmpeg"
    wrapper.write_text(f"#!/bin/sh\nexec '{find_ffmpeg('aac')}' -re \"$@\"\n")
    wrapper.chmod(0o755)
    return wrapper


def _partials(folder: Path) -> list[str]:
    """Temp files being written: the output's, and an M4B's pieces in the job folder."""
    return sorted(p.name for p in folder.rglob("*") if ".partial." in p.name)


def _encoder_of(proc: subprocess.Popen[bytes]) -> psutil.Process | None:
    """The ffmpeg child that is encoding the book (reading PCM on its stdin), if any."""
    try:
        children = psutil.Process(proc.pid).children()
    except psutil.NoSuchProcess:
        return None
    for child in children:
        try:
            if "pipe:0" in child.cmdline():
                return child
        except psutil.Error:
            continue
    return None


def _wait_for_encoding(proc: subprocess.Popen[bytes], out: Path) -> psutil.Process:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the run finished before it could be killed while encoding")
        encoder = _encoder_of(proc)
        if encoder is not None and _partials(out.parent):
            return encoder
        time.sleep(0.02)
    pytest.fail("the run never started encoding")


def _gone(process: psutil.Process, seconds: float = 3.0) -> bool:
    try:
        process.wait(timeout=seconds)
    except psutil.TimeoutExpired:
        return False
    except psutil.NoSuchProcess:
        pass
    return True


@pytest.mark.slow
def test_sigkill_while_encoding_leaves_no_orphan_and_no_partial(
        tmp_path: Path, slow_ffmpeg: Path) -> None:
    book = write_text(tmp_path / "book.md", LONGER)
    out = tmp_path / "book.m4b"
    args = ["synth", book, "-o", out, "--quiet", *FAST]
    proc = subprocess.Popen(cli_command(*args), env=cli_env(VOICEKIT_FFMPEG=str(slow_ffmpeg)))
    encoder = _wait_for_encoding(proc, out)
    time.sleep(0.3)  # well inside the encode: ffmpeg has written part of the file
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    try:
        assert _gone(encoder), "ffmpeg went on writing after voicekit was killed"
    finally:
        if encoder.is_running():
            encoder.kill()
    assert not out.exists()
    # the rerun resumes, removes the dead run's partial file and writes the same audiobook
    again = subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _partials(tmp_path) == []
    fresh = tmp_path / "fresh.m4b"
    done = subprocess.run(cli_command("synth", book, "-o", fresh, "--quiet", *FAST),
                          env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == fresh.read_bytes()


@pytest.mark.slow
def test_sigkill_at_random_moments_then_resume_gives_the_same_bytes(
        tmp_path: Path, slow_ffmpeg: Path) -> None:
    book = write_text(tmp_path / "book.md", LONGER)
    out = tmp_path / "book.m4b"
    args = ["synth", book, "-o", out, "--quiet", "--bucket-size", "1", *FAST]
    slow = cli_env(VOICEKIT_FFMPEG=str(slow_ffmpeg))
    rng = random.Random(20240611)
    for attempt in range(4):
        proc = subprocess.Popen(cli_command(*args), env=slow)
        if attempt == 3:  # the last kill lands at a random point of the encode
            _wait_for_encoding(proc, out)
            time.sleep(rng.uniform(0.0, 1.5))
        else:  # start-up, planning, synthesis: wherever the clock says
            time.sleep(rng.uniform(0.5, 6.0))
        assert proc.poll() is None, "the run finished before it could be killed"
        encoder = _encoder_of(proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if encoder is not None:
            assert _gone(encoder), "ffmpeg outlived the killed run"
        assert not out.exists()
    again = subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert _partials(tmp_path) == [] and not (tmp_path / "book.m4b.voicekit-job").exists()
    fresh = tmp_path / "fresh.m4b"
    subprocess.run(cli_command("synth", book, "-o", fresh, "--quiet", "--bucket-size", "1",
                               *FAST), env=cli_env(), check=True)
    assert out.read_bytes() == fresh.read_bytes()


@pytest.mark.slow
def test_killed_between_the_rename_and_the_jobs_removal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = write_text(tmp_path / "book.md")
    out = tmp_path / "book.wav"
    real_remove = Job.remove

    def killed(self: Job) -> None:
        raise KeyboardInterrupt  # stands for the kill: the output is renamed, the job stays

    monkeypatch.setattr(Job, "remove", killed)
    assert invoke("synth", book, "-o", out, *FAST).exit_code == 130
    monkeypatch.setattr(Job, "remove", real_remove)
    job = tmp_path / "book.wav.voicekit-job"
    assert out.is_file() and job.is_dir()
    before = (out.read_bytes(), out.stat().st_mtime_ns)

    result = invoke("synth", book, "-o", out, *FAST)
    assert result.exit_code == 0, result.stderr
    assert "was already complete" in result.stderr
    assert not job.exists()
    assert (out.read_bytes(), out.stat().st_mtime_ns) == before
    # and once tidied, the output is simply one that exists
    one_line_error(invoke("synth", book, "-o", out, *FAST), 3, "exists")


@pytest.mark.slow
def test_a_stale_record_does_not_claim_someone_elses_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    book = write_text(tmp_path / "book.md")
    out = tmp_path / "book.wav"
    monkeypatch.setattr(Job, "remove", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
    assert invoke("synth", book, "-o", out, *FAST).exit_code == 130
    monkeypatch.undo()
    out.write_bytes(b"the user's own file now")
    one_line_error(invoke("synth", book, "-o", out, *FAST), 3, "exists")
    assert out.read_bytes() == b"the user's own file now"


_HOLD = """
import fcntl, sys, time
fh = open(sys.argv[1], "r+")
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.slow
def test_a_dead_runs_partial_file_is_removed_a_live_ones_kept(tmp_path: Path) -> None:
    book = write_text(tmp_path / "book.md")
    out = tmp_path / "book.wav"
    dead = tmp_path / ".book.wav.k1ll3d_x.partial.wav"
    dead.write_bytes(b"\0" * 1_000_000)
    live = tmp_path / ".book.wav.wr1t1ng_.partial.wav"
    live.write_bytes(b"being written")
    other = tmp_path / ".book.wav.mine.partial.wav"  # not a name voicekit makes
    other.write_bytes(b"mine")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(live)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        result = invoke("synth", book, "-o", out, *FAST)
        assert result.exit_code == 0, result.stderr
    finally:
        holder.kill()
        holder.wait()
    assert not dead.exists()
    assert live.read_bytes() == b"being written" and other.read_bytes() == b"mine"


@pytest.mark.slow
def test_sigkill_after_some_pieces_then_the_rerun_encodes_only_the_rest(
        tmp_path: Path) -> None:
    # an M4B is encoded in pieces beside the synthesis; finished pieces are checkpoints
    book = write_text(tmp_path / "book.md", "\n\n".join(
        f"# Part {i}\n\nThe tide came in over the sand, slow and grey. The gulls cried."
        for i in range(6)) + "\n")
    out = tmp_path / "book.m4b"
    args = ["synth", book, "-o", out, "--quiet", *FAST]
    pieces = tmp_path / "book.m4b.voicekit-job" / "pieces"
    proc = subprocess.Popen(cli_command(*args), env=cli_env())
    deadline = time.monotonic() + 300
    while not list(pieces.glob("*.json")):  # a piece is finished once its record is written
        assert proc.poll() is None, "the run finished before a piece could be kept"
        assert time.monotonic() < deadline, "no piece was encoded"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kept = {p.name for p in pieces.glob("*.json")}
    again = subprocess.run(cli_command(*args, "--json"), env=cli_env(), capture_output=True,
                           text=True)
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["pieces"] == 6 and result["pieces_resumed"] == len(kept) >= 1
    fresh = tmp_path / "fresh.m4b"
    subprocess.run(cli_command("synth", book, "-o", fresh, "--quiet", *FAST), env=cli_env(),
                   check=True)
    assert out.read_bytes() == fresh.read_bytes()
