"""Issue 9, items 1 and 2: voicekit deletes only what it made, and --restart waits its turn."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.reliability.helpers import FAST, invoke, one_line_error, write_text
from tests.synth.manifests import make_manifest
from voicekit.errors import JobError
from voicekit.synth.job import Job


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# --- the Job class -------------------------------------------------------------------
def test_a_folder_holding_user_files_is_refused_and_untouched(tmp_path: Path) -> None:
    (tmp_path / "thesis.tex").write_text("years of work")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.npz").write_bytes(b"not ours")
    before = _tree(tmp_path)
    for restart in (False, True):
        with pytest.raises(JobError, match="not a voicekit job folder"):
            Job.open(tmp_path, restart=restart)
    assert _tree(tmp_path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "thesis.tex"]


def test_removal_deletes_only_voicekits_files(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    with Job.open(folder) as job:
        job.write("abc", np.arange(6, dtype=np.int16), [6])
        job.write_manifest(make_manifest())
        job.write_cover("cover.png", b"\x89PNG\r\n\x1a\n")
    # a file someone put there after voicekit made the folder
    (folder / "notes.txt").write_text("mine")
    (folder / "segments" / "mine.wav").write_bytes(b"mine too")
    Job.open(folder).remove()
    assert _tree(folder) == {"notes.txt": b"mine", "segments/mine.wav": b"mine too"}


def test_an_empty_folder_is_adopted_and_kept_a_made_one_removed(tmp_path: Path) -> None:
    given = tmp_path / "given"
    given.mkdir()
    made = tmp_path / "made" / "job"
    for folder in (given, made):
        with Job.open(folder) as job:
            job.write("abc", np.zeros(4, np.int16), [4])
        Job.open(folder).remove()
    assert given.is_dir() and not any(given.iterdir())  # the user's folder stays, empty
    assert not made.exists()


def test_a_job_from_before_the_marker_is_still_ours(tmp_path: Path) -> None:
    folder = tmp_path / "old.wav.voicekit-job"
    (folder / "segments").mkdir(parents=True)
    (folder / "job.json").write_text('{"version": 1, "buckets": []}')
    (folder / "lock").write_text("")
    np.savez(folder / "segments" / "abc.npz", pcm=np.zeros(3, np.int16), lengths=np.array([3]))
    with Job.open(folder) as job:
        assert job.has("abc")
    Job.open(folder).remove()
    assert not folder.exists()


# --- the command ---------------------------------------------------------------------
def test_work_dir_dot_with_the_input_inside_deletes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_text(tmp_path / "book.md")
    (tmp_path / "other.txt").write_text("keep")
    before = _tree(tmp_path)
    for extra in ([], ["--restart"]):
        result = invoke("synth", "book.md", "-o", "out/book.wav", "--work-dir", ".", *extra,
                        *FAST)
        one_line_error(result, 7, "not a voicekit job folder")
        assert _tree(tmp_path) == before


def test_work_dir_set_to_the_outputs_folder_keeps_the_output(tmp_path: Path) -> None:
    book = write_text(tmp_path / "book.md")
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.m4b").write_bytes(b"a finished audiobook")
    result = invoke("synth", book, "-o", out / "book.wav", "--work-dir", out, *FAST)
    one_line_error(result, 7, "not a voicekit job folder")
    assert _tree(out) == {"earlier.m4b": b"a finished audiobook"}


@pytest.mark.slow
def test_an_empty_work_dir_is_used_and_left_as_found(tmp_path: Path) -> None:
    book = write_text(tmp_path / "book.md")
    work = tmp_path / "work"
    work.mkdir()
    result = invoke("synth", book, "-o", tmp_path / "book.wav", "--work-dir", work, *FAST)
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "book.wav").stat().st_size > 1000
    assert work.is_dir() and not any(work.iterdir())
    # the default job folder, which voicekit made, is removed after success
    result = invoke("synth", book, "-o", tmp_path / "again.wav", *FAST)
    assert result.exit_code == 0, result.stderr
    assert not (tmp_path / "again.wav.voicekit-job").exists()


# --- item 2: the lock comes before --restart clears anything ---------------------------
_HOLD = """
import fcntl, sys, time
fh = open(sys.argv[1], "a+")
fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_restart_while_another_run_holds_the_job_is_refused(tmp_path: Path) -> None:
    book = write_text(tmp_path / "book.md")
    folder = tmp_path / "book.wav.voicekit-job"
    with Job.open(folder) as job:
        job.write("abc", np.arange(8, dtype=np.int16), [8])
    segments = _tree(folder / "segments")
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder / "lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        for extra in (["--restart"], []):
            result = invoke("synth", book, "-o", tmp_path / "book.wav", *extra, *FAST)
            one_line_error(result, 7, "in use by another voicekit run")
            assert _tree(folder / "segments") == segments
    finally:
        holder.kill()
        holder.wait()
    assert not (tmp_path / "book.wav").exists()


def test_restart_empties_a_job_it_holds(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    with Job.open(folder) as job:
        job.write("abc", np.zeros(2, np.int16), [2])
        job.write_manifest(make_manifest())
    with Job.open(folder, restart=True) as job:
        assert not job.has("abc") and not (folder / "job.json").exists()
        assert (folder / ".voicekit-job").is_file()
