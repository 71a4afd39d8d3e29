"""Issue 9, item 7: ordinary OS errors are named, with the exit code of what failed.

Disk full and a read-only job folder are real where this process may mount (root in a
new mount namespace: a small tmpfs, a read-only bind mount); simulated otherwise.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.helpers import FAST, cli_command, cli_env, write_text
from tests.synth.manifests import make_manifest
from voicekit.errors import JobError, OutputError
from voicekit.formats import output as output_mod
from voicekit.formats.output import EncodeOptions, write_atomic
from voicekit.formats.timeline import Timeline
from voicekit.synth.job import Job


def _enospc(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


# --- simulated: the Job class and the output writer ----------------------------------
def test_disk_full_writing_a_segment_is_a_job_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    with Job.open(tmp_path / "job") as job:
        job.write("first", np.zeros(4, np.int16), [4])
        monkeypatch.setattr(np, "savez", _enospc)
        with pytest.raises(JobError) as caught:
            job.write("second", np.zeros(4, np.int16), [4])
        assert caught.value.exit_code == 7
        assert "cannot write the job folder" in caught.value.message
        assert caught.value.hint == "the disk is full: free some space; finished buckets are kept"
        assert sorted(p.name for p in job.segments.iterdir()) == ["first.npz"]  # no temp left


def test_disk_full_writing_the_output_is_an_output_error(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    def encoder(path: Path, *args: object) -> None:
        path.write_bytes(b"half an audiobook")
        _enospc()

    monkeypatch.setitem(output_mod.ENCODERS, "wav", encoder)
    out = tmp_path / "book.wav"
    with pytest.raises(OutputError) as caught:
        write_atomic(out, "wav", Timeline(22050, 0, []), [], EncodeOptions())
    assert caught.value.exit_code == 3
    assert caught.value.message == f"cannot write {out}: No space left on device"
    assert caught.value.hint == "the disk is full: free some space"
    assert list(tmp_path.iterdir()) == []  # no partial file left


def test_ffmpeg_reporting_an_os_error_is_recognised() -> None:
    from voicekit.formats import ffmpeg

    found = ffmpeg.os_error_in("[out#0/ipod] Error writing trailer: No space left on device")
    assert found is not None and found.errno == errno.ENOSPC
    assert ffmpeg.os_error_in("Invalid data found when processing input") is None


def test_a_folder_where_the_manifest_should_be(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job") as job:
        (job.folder / "job.json").mkdir()
        with pytest.raises(JobError, match="cannot write the job folder") as caught:
            job.write_manifest(make_manifest())
        assert caught.value.hint == "a folder is where a file should be: move it away"


# --- real: a small tmpfs and a read-only bind mount ----------------------------------
def _can_mount(tmp_path: Path) -> str:
    """'' when a mount namespace with a tmpfs can be made here, else why not."""
    if shutil.which("unshare") is None or shutil.which("mount") is None:
        return "no unshare or mount"
    probe = tmp_path / "probe"
    probe.mkdir()
    done = subprocess.run(["unshare", "-m", "sh", "-c",
                           f"mount -t tmpfs -o size=64k tmpfs '{probe}'"],
                          capture_output=True, text=True)
    probe.rmdir()
    return "" if done.returncode == 0 else f"cannot mount: {done.stderr.strip()}"


@pytest.fixture
def mountable(tmp_path: Path) -> None:
    reason = _can_mount(tmp_path)
    if reason:
        pytest.skip(reason)


def _in_namespace(script: str) -> None:
    subprocess.run(["unshare", "-m", "sh", "-ec", script], env=cli_env(), check=True,
                   timeout=300)


def _cmd(*args: object) -> str:
    return " ".join(f"'{a}'" for a in cli_command(*args))


def _error(path: Path) -> str:
    lines = [ln for ln in path.read_text().splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1, path.read_text()
    assert "Traceback" not in path.read_text()
    return lines[0]


@pytest.mark.slow
def test_disk_full_job_folder_then_freed_resumes(tmp_path: Path, mountable: None) -> None:
    book = write_text(tmp_path / "book.md")
    disk = tmp_path / "disk"
    disk.mkdir()
    # nearly all taken by a filler: the first bucket fits, a later one does not. Freed,
    # the disk holds the segments and the loudness chain's pieces (FLAC) beside them
    _in_namespace(f"""
        mount -t tmpfs -o size=512k tmpfs '{disk}'
        head -c 456000 /dev/zero > '{disk}/filler'
        rc=0; {_cmd("synth", book, "-o", tmp_path / "book.wav", "--work-dir", disk / "job",
                    *FAST)} 2> '{tmp_path}/first.err' || rc=$?
        echo $rc > '{tmp_path}/first.rc'
        rm '{disk}/filler'
        {_cmd("synth", book, "-o", tmp_path / "book.wav", "--work-dir", disk / "job", "--json",
              *FAST)} > '{tmp_path}/second.json'
    """)
    assert (tmp_path / "first.rc").read_text().strip() == "7"
    line = _error(tmp_path / "first.err")
    assert "cannot write the job folder" in line and "No space left on device" in line
    assert "the disk is full: free some space; finished buckets are kept" in line
    summary = json.loads((tmp_path / "second.json").read_text())
    assert summary["buckets_resumed"] >= 1
    assert (tmp_path / "book.wav").stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["wav", "m4b"])
def test_disk_full_output_then_freed_resumes(tmp_path: Path, mountable: None, fmt: str) -> None:
    book = write_text(tmp_path / "book.md")
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / f"book.{fmt}"
    run = _cmd("synth", book, "-o", out, "--work-dir", tmp_path / "job", *FAST)
    _in_namespace(f"""
        mount -t tmpfs -o size=16k tmpfs '{disk}'
        rc=0; {run} 2> '{tmp_path}/first.err' || rc=$?
        echo $rc > '{tmp_path}/first.rc'
        ls -A '{disk}' > '{tmp_path}/left.txt'
        mount -o remount,size=4m '{disk}'
        {run} --json > '{tmp_path}/second.json'
        cp '{out}' '{tmp_path}/copy.{fmt}'
    """)
    assert (tmp_path / "first.rc").read_text().strip() == "3"
    line = _error(tmp_path / "first.err")
    assert f"cannot write {out}" in line and "No space left on device" in line
    assert "the disk is full: free some space; finished buckets are kept" in line
    assert (tmp_path / "left.txt").read_text() == ""  # no partial file left behind
    summary = json.loads((tmp_path / "second.json").read_text())
    assert summary["buckets_synthesized"] == 0 and summary["buckets_resumed"] > 0
    assert (tmp_path / f"copy.{fmt}").stat().st_size > 10_000


def test_read_only_job_folder(tmp_path: Path, mountable: None) -> None:
    book = write_text(tmp_path / "book.md")
    job = tmp_path / "book.wav.voicekit-job"
    job.mkdir()
    _in_namespace(f"""
        mount --bind '{job}' '{job}'
        mount -o remount,bind,ro '{job}'
        rc=0; {_cmd("synth", book, "-o", tmp_path / "book.wav", *FAST)} \
            2> '{tmp_path}/first.err' || rc=$?
        echo $rc > '{tmp_path}/first.rc'
    """)
    assert (tmp_path / "first.rc").read_text().strip() == "7"
    line = _error(tmp_path / "first.err")
    assert f"the job folder {job}" in line
    assert "the file system is read-only: choose a writable folder" in line


def test_disk_full_while_tagging_is_an_output_error(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from voicekit.errors import SynthesisError

    def encoder(path: Path, *args: object) -> None:
        try:  # as tags.py wraps what mutagen raises while saving
            _enospc()
        except OSError as exc:
            raise SynthesisError(f"cannot tag {path.name}: {exc}") from exc

    monkeypatch.setitem(output_mod.ENCODERS, "wav", encoder)
    with pytest.raises(OutputError, match="No space left on device") as caught:
        write_atomic(tmp_path / "b.wav", "wav", Timeline(22050, 0, []), [], EncodeOptions())
    assert caught.value.hint == "the disk is full: free some space"
    assert list(tmp_path.iterdir()) == []
