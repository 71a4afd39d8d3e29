"""Issue 9, item 4: a damaged segment body is made again, never trusted, never stuck."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from voicekit.errors import JobError
from voicekit.settings import SynthSettings
from voicekit.synth import finish, writing
from voicekit.synth.job import Job, read_segment, verify_segment
from voicekit.synth.pipeline import RunOptions, Synthesizer
from voicekit.synth.progress import Progress, RunResult
from voicekit.text.model import Book, BookMeta, Chapter


def _book() -> Book:
    return Book(BookMeta(title="T"), [Chapter(1, "One", ["Hello there. This is a test."]),
                                      Chapter(2, "Two", ["A second paragraph."])])


def _run(settings: SynthSettings, out: Path, **kw: object) -> RunResult:
    synth = Synthesizer(settings)
    options = RunOptions(**kw)  # type: ignore[arg-type]
    events: list[Progress] = list(synth.run(synth.plan(_book()), out, options))
    assert events[-1].result is not None
    return events[-1].result


def _swap_pcm(path: Path) -> None:
    """Other samples of the same length, in a perfectly valid npz (only a checksum tells)."""
    with np.load(path) as data:
        members = {k: data[k] for k in data.files}
    members["pcm"] = (members["pcm"].astype(np.int32) // 2).astype(np.int16)
    np.savez(path, **members)


def _flip_bytes(path: Path) -> None:
    """Flip bytes inside the pcm member's data; the zip's structure stays intact."""
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("pcm.npy")
    data = bytearray(path.read_bytes())
    start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 128  # past .npy header
    for i in range(start, start + 64):
        data[i] ^= 0x55
    path.write_bytes(bytes(data))


def test_checksum_catches_other_samples_of_the_same_length(tmp_path: Path) -> None:
    with Job.open(tmp_path / "job") as job:
        job.write("abc", np.arange(100, dtype=np.int16), [60, 40])
        assert verify_segment(job.folder, "abc") == 100
        _swap_pcm(job.segment_path("abc"))
        assert read_segment(job.folder, "abc") is None
        assert verify_segment(job.folder, "abc") is None


def test_segments_without_a_checksum_are_still_read(tmp_path: Path) -> None:
    # segments written before the CRC-32: their zip CRC and lengths still guard them
    with Job.open(tmp_path / "job") as job:
        np.savez(job.segment_path("old"), pcm=np.arange(9, dtype=np.int16), lengths=np.array([9]))
        assert verify_segment(job.folder, "old") == 9
        _flip_bytes(job.segment_path("old"))  # the zip CRC catches this on a full read
        assert verify_segment(job.folder, "old") is None


@pytest.mark.slow
@pytest.mark.parametrize("damage", [_swap_pcm, _flip_bytes])
def test_a_damaged_segment_is_redone_by_the_rerun(
        tmp_path: Path, cpu_settings: SynthSettings, damage: object) -> None:
    first = _run(cpu_settings, tmp_path / "a.wav", keep_work=True)
    segments = sorted(Path(first.job_dir or "").glob("segments/*.npz"))
    damage(segments[1])  # type: ignore[operator]
    again = _run(cpu_settings, tmp_path / "a.wav", force=True)
    assert (again.buckets_synthesized, again.buckets_resumed) == (1, first.buckets - 1)
    _run(cpu_settings, tmp_path / "fresh.wav")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "fresh.wav").read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("loudness", [0.0, -20.0], ids=["one-encode", "pieces"])
def test_damage_after_the_resume_check_fails_once_then_the_rerun_redoes_it(
        tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch,
        loudness: float) -> None:
    # one encoder reads the segments after the synthesis (loudness off), or the
    # loudness chain reads them in pieces (synth/finish.py): damage between the
    # resume check and that read must fail the run, and the rerun make it again
    settings = cpu_settings.replace(loudness=loudness)

    def damage(folder: Path) -> None:
        _swap_pcm(sorted(folder.glob("segments/*.npz"))[0])

    real_build, real_finish = writing.build_timeline, finish.Finisher.finish

    def damage_then_build(folder: Path, manifest: dict) -> object:  # type: ignore[type-arg]
        damage(folder)
        return real_build(folder, manifest)

    def damage_then_finish(self: finish.Finisher, *args: object) -> object:
        damage(self.job.folder)  # a short book: no piece was read before this
        return real_finish(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(writing, "build_timeline", damage_then_build)
    monkeypatch.setattr(finish.Finisher, "finish", damage_then_finish)
    with pytest.raises(JobError, match="damaged") as caught:
        _run(settings, tmp_path / "a.wav")
    assert "rerun" in (caught.value.hint or "")
    assert not (tmp_path / "a.wav").exists()
    monkeypatch.undo()
    again = _run(settings, tmp_path / "a.wav")
    assert again.buckets_synthesized == 1
    _run(settings, tmp_path / "fresh.wav")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "fresh.wav").read_bytes()
