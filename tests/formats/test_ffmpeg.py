"""Finding ffmpeg (system first, imageio-ffmpeg's next), its encoders, and reading files."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.formats.audio_helpers import timeline, tone
from voicekit.errors import DependencyError, InputError, SynthesisError
from voicekit.formats import ffmpeg
from voicekit.formats.output import EncodeOptions, write_atomic


def _bundled() -> str:
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def test_bundled_build_has_every_encoder_we_use() -> None:
    names = ffmpeg.encoders_of(_bundled())
    assert {"aac", "libmp3lame", "libopus", "flac", "png"} <= names


def test_system_ffmpeg_first_and_fallback_for_a_missing_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\necho ' A....D pcm_s16le  PCM'\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr(ffmpeg.shutil, "which", lambda name: str(fake))
    ffmpeg.encoders_of.cache_clear()
    assert ffmpeg.candidates() == [str(fake), _bundled()]
    assert ffmpeg.find_ffmpeg() == str(fake)
    assert ffmpeg.find_ffmpeg("pcm_s16le") == str(fake)
    assert ffmpeg.find_ffmpeg("libmp3lame") == _bundled()  # the system one lacks it
    ffmpeg.encoders_of.cache_clear()


def test_no_ffmpeg_anywhere_is_a_dependency_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import imageio_ffmpeg

    def nothing() -> str:
        raise RuntimeError("no ffmpeg exe could be found")

    monkeypatch.setattr(ffmpeg.shutil, "which", lambda name: None)
    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", nothing)
    with pytest.raises(DependencyError, match="ffmpeg is needed") as info:
        ffmpeg.find_ffmpeg("aac")
    assert info.value.exit_code == 6 and "imageio-ffmpeg" in (info.value.hint or "")


def test_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ffmpeg.ENV_BINARY, str(tmp_path / "missing-ffmpeg"))
    with pytest.raises(DependencyError, match="not an executable"):
        ffmpeg.find_ffmpeg()
    monkeypatch.setenv(ffmpeg.ENV_BINARY, _bundled())
    assert ffmpeg.candidates() == [_bundled()]


def test_encoding_without_ffmpeg_names_the_dependency(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ffmpeg.ENV_BINARY, str(tmp_path / "gone"))
    tl = timeline([0.2])
    with pytest.raises(DependencyError):
        write_atomic(tmp_path / "a.mp3", "mp3", tl, tone(tl), EncodeOptions())
    assert list(tmp_path.iterdir()) == []  # the temp file went with the error


def test_probe_and_decode(tmp_path: Path) -> None:
    tl = timeline([0.5, 0.25], rate=22050)
    path = tmp_path / "a.wav"
    write_atomic(path, "wav", tl, tone(tl), EncodeOptions())
    info = ffmpeg.probe(path)
    assert (info.sample_rate, info.codec, info.has_cover) == (22050, "pcm_s16le", False)
    assert info.seconds == pytest.approx(0.75, abs=0.01)
    pcm = np.concatenate(list(ffmpeg.decode_pcm(path, 22050)))
    assert np.array_equal(pcm, np.concatenate(list(tone(tl))))


def test_decode_stopped_early_ends_ffmpeg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tl = timeline([3.0])
    path = tmp_path / "a.wav"
    write_atomic(path, "wav", tl, tone(tl), EncodeOptions())
    started: list[subprocess.Popen[bytes]] = []

    class RecordedPopen(subprocess.Popen):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(ffmpeg.subprocess, "Popen", RecordedPopen)
    stream = ffmpeg.decode_pcm(path, 16000, block=1024)
    assert len(next(stream)) == 1024
    stream.close()
    assert len(started) == 1
    assert started[0].returncode is not None  # killed and reaped: no zombie left behind


def test_decode_with_a_binary_that_cannot_run(tmp_path: Path) -> None:
    with pytest.raises(DependencyError, match="cannot run ffmpeg"):
        next(ffmpeg.decode_pcm(tmp_path / "a.wav", 16000, binary=str(tmp_path / "no-ffmpeg")))


def test_not_audio(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(InputError, match="not audio that ffmpeg can read"):
        ffmpeg.probe(path)


def test_ffmpeg_failure_is_one_line(tmp_path: Path) -> None:
    tl = timeline([0.2])
    target = tmp_path / "no-such-folder" / "a.flac"
    with pytest.raises(SynthesisError, match="ffmpeg could not write flac") as info:
        ffmpeg.encode_pcm(
            ffmpeg.find_ffmpeg("flac"),
            tone(tl),
            tl.sample_rate,
            ["-c:a", "flac", "-f", "flac", str(target)],
            what="flac",
        )
    assert "\n" not in str(info.value)


def test_pcm_source_error_stops_ffmpeg_and_propagates(tmp_path: Path) -> None:
    from voicekit.errors import JobError

    def broken():  # type: ignore[no-untyped-def]
        yield np.zeros(1000, np.int16)
        raise JobError("segment abc is missing")

    with pytest.raises(JobError, match="segment abc"):
        write_atomic(tmp_path / "a.m4b", "m4b", timeline([1.0]), broken(), EncodeOptions())
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".m4b")]
