"""Ctrl-C and SIGTERM at any moment: one line, exit 130 or 143, no traceback (issue 9, item 10).

The subprocess tests run the real ``python -m voicekit``. "After main() started" is read
from /proc: main() installs the SIGTERM handler first, so the moment the kernel shows
SIGTERM as caught is the moment voicekit's own handling covers every signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import IO

import pytest
import typer

import voicekit
from voicekit.cli.common import (
    INTERRUPTED,
    TERMINATED,
    Terminated,
    handles_errors,
    interruption,
)

ROOT = Path(voicekit.__file__).resolve().parent.parent
FAST = ["--device", "cpu", "--backend", "ort"]
linux_only = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")


def _text(tmp_path: Path, paragraphs: int = 12) -> Path:
    path = tmp_path / "story.txt"
    para = "Boats came and went along the old stone wall. The gulls cried over the harbour."
    path.write_text("\n\n".join([para] * paragraphs) + "\n", encoding="utf-8")
    return path


def _start(tmp_path: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("VOICEKIT_DEBUG", None)
    cmd = [sys.executable, "-m", "voicekit", "synth", str(_text(tmp_path)),
           "-o", str(tmp_path / "out.wav"), *FAST, *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=tmp_path)


def _caught(pid: int, signum: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def _wait_for_main(proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while not _caught(proc.pid, signal.SIGTERM):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "main() never started"
        time.sleep(0.002)


def _wait_for_line(stream: IO[str], needle: str, seen: list[str]) -> None:
    for line in stream:
        seen.append(line)
        if needle in line:
            return
    raise AssertionError(f"{needle!r} never printed: {seen}")


def _finish(proc: subprocess.Popen[str], seen: list[str] | None = None) -> tuple[int, str]:
    _, rest = proc.communicate(timeout=120)
    return proc.returncode, "".join(seen or []) + rest


def _one_error_line(stderr: str, start: str) -> None:
    assert "Traceback" not in stderr and "unexpected" not in stderr, stderr
    errors = [ln for ln in stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(start), stderr
    assert "finished work is kept" in errors[0]


@linux_only
@pytest.mark.parametrize("delay", [0.0, 0.1, 0.3, 0.5])
def test_ctrl_c_in_the_first_half_second(tmp_path: Path, delay: float) -> None:
    proc = _start(tmp_path, "--quiet")
    _wait_for_main(proc)
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    code, stderr = _finish(proc)
    assert code == INTERRUPTED, stderr
    # --quiet: the error line is all there is
    assert stderr.splitlines() == [
        "error: interrupted; finished work is kept, run the same command to resume"
    ], stderr


@linux_only
def test_ctrl_c_at_once(tmp_path: Path) -> None:
    # Before Python has set up its own handler the signal ends the interpreter the
    # default way (the shell shows 130 too); voicekit cannot run any code that early.
    proc = _start(tmp_path, "--quiet")
    proc.send_signal(signal.SIGINT)
    code, stderr = _finish(proc)
    assert code in (INTERRUPTED, -signal.SIGINT), stderr
    assert "unexpected" not in stderr
    if code == INTERRUPTED:
        _one_error_line(stderr, "error: interrupted")


@linux_only
def test_ctrl_c_during_model_load(tmp_path: Path) -> None:
    proc = _start(tmp_path)
    assert proc.stderr is not None
    seen: list[str] = []
    _wait_for_line(proc.stderr, ": loading ", seen)
    proc.send_signal(signal.SIGINT)
    code, stderr = _finish(proc, seen)
    assert code == INTERRUPTED, stderr
    _one_error_line(stderr, "error: interrupted")


@linux_only
def test_sigterm_mid_synthesis_unwinds_like_ctrl_c(tmp_path: Path) -> None:
    proc = _start(tmp_path, "--bucket-size", "1")
    assert proc.stderr is not None
    seen: list[str] = []
    _wait_for_line(proc.stderr, " buckets ", seen)  # a progress line: synthesis is under way
    proc.send_signal(signal.SIGTERM)
    code, stderr = _finish(proc, seen)
    assert code == TERMINATED, stderr
    _one_error_line(stderr, "error: terminated")
    job = tmp_path / "out.wav.voicekit-job"
    assert list((job / "segments").glob("*.npz")), "finished buckets are kept"
    # the unwinding ran: no temp file of a segment or of the output is left behind
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith((".tmp", ".partial.wav"))]
    assert leftovers == []
    assert not (tmp_path / "out.wav").exists()


@linux_only
def test_keyboard_interrupt_in_a_worker_thread(tmp_path: Path) -> None:
    # The memory monitor's thread is one voicekit does not hand errors back from.
    script = textwrap.dedent(f"""
        import sys
        from voicekit.system import monitor
        from voicekit.cli.main import main

        def loop(self):
            raise KeyboardInterrupt

        monitor.MemoryMonitor._loop = loop
        sys.argv = ["voicekit", "synth", {str(_text(tmp_path, 40))!r}, "-o",
                    {str(tmp_path / "out.wav")!r}, "--device", "cpu", "--backend", "ort"]
        main()
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert proc.returncode == INTERRUPTED, proc.stderr
    assert "Exception in thread" not in proc.stderr
    _one_error_line(proc.stderr, "error: interrupted")


@linux_only
def test_ctrl_c_inside_code_run_by_exec_still_exits_130(tmp_path: Path) -> None:
    # dataclasses builds each __init__ with exec(): a Ctrl-C there made CPython end the
    # process by SIGINT (-2) after voicekit had reported it and asked for 130.
    script = textwrap.dedent(f"""
        import sys
        from voicekit.text import sources
        from voicekit.cli.main import main

        def load_source(*args, **kwargs):
            exec("raise KeyboardInterrupt")

        sources.load_source = load_source
        import voicekit.cli.synth
        voicekit.cli.synth.load_source = load_source
        sys.argv = ["voicekit", "synth", {str(_text(tmp_path))!r}, "--dry-run"]
        main()
    """)
    # run with -m, as python -m voicekit is: only then does CPython act on that mark
    (tmp_path / "kick.py").write_text(script, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "kick"], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"},
                          timeout=120)
    assert proc.returncode == INTERRUPTED, proc.stderr
    _one_error_line(proc.stderr, "error: interrupted")


# --------------------------------------------------------------------------- in process
def _boundary(exc: BaseException) -> int:
    @handles_errors
    def command() -> None:
        raise exc

    with pytest.raises(typer.Exit) as info:
        command()
    return info.value.exit_code


def test_an_import_error_behind_a_ctrl_c_is_an_interrupt(capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            # the implicit chain is the point: what an import cut short leaves behind
            raise ImportError("cannot import name 'x' from partially initialized module")  # noqa: B904
    except ImportError as exc:
        error = exc
    assert interruption(error) is not None
    assert _boundary(error) == INTERRUPTED
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "error: interrupted; finished work is kept, run the same command to resume"
    ]


def test_an_error_raised_from_none_is_not_an_interrupt() -> None:
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("unrelated") from None
    except ValueError as exc:
        assert interruption(exc) is None


def test_terminated_exits_143(capsys: pytest.CaptureFixture[str]) -> None:
    assert _boundary(Terminated()) == TERMINATED
    assert capsys.readouterr().err.startswith("error: terminated; finished work is kept")


def test_a_stray_os_error_says_what_to_fix(capsys: pytest.CaptureFixture[str]) -> None:
    import errno

    code = _boundary(OSError(errno.ENOSPC, "No space left on device", "/books/out.wav"))
    err = capsys.readouterr().err
    assert code == 1
    assert "please report" not in err and "unexpected" not in err
    assert "/books/out.wav" in err and "the disk is full: free some space" in err
    _boundary(OSError(errno.ENXIO, "No such device or address"))
    err = capsys.readouterr().err
    assert "please report" not in err and "fix what the system names" in err
