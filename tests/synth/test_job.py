from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.synth.manifests import make_manifest
from voicekit.errors import JobError
from voicekit.synth.job import Job, read_manifest, read_segment, segment_lengths
from voicekit.synth.manifest import VERSION


def test_segments_round_trip_and_leave_no_temp_files(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job") as job:
        pcm = np.arange(10, dtype=np.int16)
        job.write("abc", pcm, [4, 6])
        assert job.has("abc")
        seg = read_segment(job.folder, "abc")
        assert seg is not None and np.array_equal(seg.pcm, pcm)
        assert list(seg.lengths) == [4, 6]
        assert list(segment_lengths(job.folder, "abc")) == [4, 6]  # type: ignore[arg-type]
        assert [p.name for p in job.segments.iterdir()] == ["abc.npz"]


def test_damaged_segment_reads_as_missing(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job") as job:
        job.segment_path("bad").write_bytes(b"PK\x03\x04 truncated")
        assert read_segment(job.folder, "bad") is None
        assert segment_lengths(job.folder, "bad") is None
        # lengths that do not add up to the audio are damage too
        np.savez(job.segment_path("odd"), pcm=np.zeros(5, np.int16), lengths=np.array([9]))
        assert read_segment(job.folder, "odd") is None


def test_second_run_on_the_same_job_is_refused(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job"), pytest.raises(JobError, match="in use by another"):
        Job.open(tmp_path / "job")
    # released on close: it opens again
    Job.open(tmp_path / "job").close()


def test_range_writers_share_the_job_and_keep_a_whole_run_out(tmp_path: Path) -> None:
    folder = tmp_path / "job"
    with Job.open(folder, shared=True) as one, Job.open(folder, shared=True) as two:
        one.write("a", np.zeros(2, np.int16), [2])
        two.write("b", np.ones(3, np.int16), [3])
        # a run that writes the manifest and the output needs the folder alone
        with pytest.raises(JobError, match="in use by another"):
            Job.open(folder)
    with Job.open(folder) as whole:
        assert whole.finished(["a", "b", "c"]) == {"a": 2, "b": 3}
        with pytest.raises(JobError, match="in use by another"):
            Job.open(folder, shared=True)  # and no range writes beside it
        whole.share()  # the cluster's driver, once it has read the folder
        Job.open(folder, shared=True).close()
    with pytest.raises(ValueError, match="restart"):
        Job.open(folder, shared=True, restart=True)


def test_finished_deletes_a_damaged_segment_to_make_it_again(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job") as job:
        job.write("good", np.zeros(4, np.int16), [4])
        job.segment_path("torn").write_bytes(b"PK\x03\x04 truncated")
        assert job.finished(["good", "torn", "good"]) == {"good": 4}
        assert not job.has("torn")


def test_restart_discards_and_prune_removes_strays(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job") as job:
        job.write("keep", np.zeros(2, np.int16), [2])
        job.write("old", np.zeros(2, np.int16), [2])
        (job.segments / ".x.tmp").write_bytes(b"partial")
        assert job.prune({"keep"}) == 2
        assert sorted(p.name for p in job.segments.iterdir()) == ["keep.npz"]
    with Job.open(tmp_path / "job", restart=True) as job:
        assert not job.has("keep")


def test_manifest_is_versioned(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job") as job:
        job.write_manifest(make_manifest())
        assert read_manifest(job.folder) == make_manifest()
        assert json.loads((job.folder / "job.json").read_text())["version"] == VERSION
        (job.folder / "job.json").write_text('{"version": 99}')
        with pytest.raises(JobError, match="another voicekit version"):
            read_manifest(job.folder)
    with pytest.raises(JobError, match="not a voicekit job folder"):
        read_manifest(tmp_path)
