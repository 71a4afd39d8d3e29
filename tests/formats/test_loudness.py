"""Loudness: one measured gain for the whole book, a true-peak limiter, and the promise
(within 1 LU of the target, true peak at or below -3 dBTP) checked on encoded files."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from voicekit.errors import JobError
from voicekit.formats import ffmpeg, loudness
from voicekit.formats.chapter_files import write_book
from voicekit.formats.encoders import EncodeOptions
from voicekit.formats.timeline import ChapterMark, Timeline
from voicekit.synth.finish import write_normalised

RATE = 22050


def chunks(pcm: np.ndarray, block: int = 8192) -> Iterator[np.ndarray]:
    for i in range(0, len(pcm), block):
        yield pcm[i : i + block]


def speechlike(seconds: float = 12.0, level: float = 0.05, seed: int = 3) -> np.ndarray:
    """Bursts of noisy tone with pauses and a few sharp clicks: quiet, and peaky like a voice."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    wave = np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 720 * t)
    wave += 0.3 * rng.standard_normal(len(t))
    envelope = (np.sin(2 * np.pi * 0.7 * t) > -0.2).astype(float)  # pauses between "words"
    pcm = wave * envelope * level
    clicks = rng.choice(len(t), 12, replace=False)
    pcm[clicks] = 0.6 * np.sign(rng.standard_normal(12))  # peaks far above the speech
    return np.clip(np.rint(pcm * 32767), -32767, 32767).astype(np.int16)


def test_measure_a_sine_at_a_known_level() -> None:
    # a 1 kHz sine with 0.1 peak: -20 dB peak, -23 dB RMS, and K-weighting is ~0 dB at 1 kHz
    t = np.arange(RATE * 5) / RATE
    pcm = np.rint(np.sin(2 * np.pi * 1000 * t) * 0.1 * 32767).astype(np.int16)
    found = loudness.measure(chunks(pcm), RATE)
    assert found.integrated_lufs == pytest.approx(-23.0, abs=0.3)
    assert found.true_peak_dbtp == pytest.approx(-20.0, abs=0.3)
    assert found.lra < 1


@pytest.mark.parametrize("level", [0.05, 0.01])  # quiet, and very quiet (like --volume 0.2)
def test_plan_reaches_the_target_under_the_ceiling(level: float) -> None:
    pcm = speechlike(level=level)
    before = loudness.measure(chunks(pcm), RATE)
    assert before.integrated_lufs < -25  # the point: far from the target to start with
    found = loudness.plan(lambda: chunks(pcm), RATE, target_lufs=-20, true_peak_dbtp=-3)
    out = np.concatenate(list(loudness.apply(chunks(pcm), RATE, found)))
    assert len(out) == len(pcm)  # the limiter's look-ahead is compensated: marks stay put
    after = loudness.measure(chunks(out), RATE)
    assert after.integrated_lufs == pytest.approx(-20, abs=1.0)
    assert after.true_peak_dbtp <= -3.0
    assert found.after.integrated_lufs == pytest.approx(after.integrated_lufs, abs=0.2)
    assert found.to_dict()["target_lufs"] == -20


def test_a_plan_without_true_peaks_finds_the_same_gain(monkeypatch: pytest.MonkeyPatch) -> None:
    # the finisher's: its pieces' true peaks are measured as they are encoded
    pcm = speechlike(level=0.05)
    passes: list[str] = []
    real = ffmpeg.analyse_pcm

    def counted(binary: str, pcm: object, rate: int, filters: str, **kw: object) -> str:
        passes.append(filters)
        return real(binary, pcm, rate, filters, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(ffmpeg, "analyse_pcm", counted)
    fast = loudness.plan(lambda: chunks(pcm), RATE, target_lufs=-20, peaks=False)
    assert passes and not any("peak=true" in f for f in passes)
    assert math.isnan(fast.before.true_peak_dbtp) and math.isnan(fast.after.true_peak_dbtp)
    quick = len(passes)
    passes.clear()
    full = loudness.plan(lambda: chunks(pcm), RATE, target_lufs=-20)
    assert all("peak=true" in f for f in passes)
    assert len(passes) == quick >= 3  # this stream needs a correction: the limiter takes some
    assert fast.gain_db == full.gain_db
    assert fast.after.integrated_lufs == full.after.integrated_lufs


def test_one_gain_for_the_whole_book_so_a_quiet_part_stays_quieter() -> None:
    # a quiet half and a loud half: per-part normalising would make them equal
    quiet, loud = speechlike(6, level=0.01, seed=1), speechlike(6, level=0.04, seed=2)
    pcm = np.concatenate([quiet, loud])
    found = loudness.plan(lambda: chunks(pcm), RATE)
    out = np.concatenate(list(loudness.apply(chunks(pcm), RATE, found)))
    first = loudness.measure(chunks(out[: len(quiet)]), RATE).integrated_lufs
    second = loudness.measure(chunks(out[len(quiet) :]), RATE).integrated_lufs
    assert second - first == pytest.approx(12.0, abs=1.5)  # 20*log10(4) kept


def test_silence_gets_no_gain() -> None:
    pcm = np.zeros(RATE * 2, np.int16)
    found = loudness.plan(lambda: chunks(pcm), RATE)
    assert found.gain_db == 0.0 and found.before.silent


def test_off_leaves_the_stream_alone() -> None:
    pcm = speechlike(2)
    stream, found = loudness.normalise(lambda: chunks(pcm), RATE, target_lufs=None)
    assert found is None
    assert np.array_equal(np.concatenate(list(stream)), pcm)


def test_an_error_in_the_source_comes_through_the_filter_unchanged() -> None:
    def broken() -> Iterator[np.ndarray]:
        yield np.zeros(RATE, np.int16)
        raise JobError("segment gone")

    found = loudness.plan(lambda: chunks(speechlike(2)), RATE)
    with pytest.raises(JobError, match="segment gone"):
        list(loudness.apply(broken(), RATE, found))


def test_a_reader_that_stops_early_stops_ffmpeg() -> None:
    pcm = speechlike(30)
    found = loudness.plan(lambda: chunks(pcm[: RATE * 2]), RATE)
    stream = loudness.apply(chunks(pcm), RATE, found)
    next(iter(stream))
    stream.close()  # type: ignore[attr-defined]  # no hang, no leftover process


@pytest.mark.parametrize("fmt", ["m4b", "mp3", "opus", "flac"])
def test_encoded_files_keep_the_promise(tmp_path: Path, fmt: str) -> None:
    """Lossy encoders add overshoot; the margin under the ceiling must cover it."""
    pcm = speechlike(level=0.02)
    stream, found = loudness.normalise(
        lambda: chunks(pcm), RATE, target_lufs=-20, lossy=fmt != "flac"
    )
    assert found is not None
    tl = Timeline(RATE, len(pcm), [])
    out = tmp_path / f"book.{fmt}"
    write_book(out, fmt, tl, stream, EncodeOptions(meta={"title": "t"}))
    got = loudness.measure(ffmpeg.decode_pcm(out, RATE), RATE)
    assert got.integrated_lufs == pytest.approx(-20, abs=1.0)
    assert got.true_peak_dbtp <= -3.0


def test_split_chapter_files_share_the_book_gain(tmp_path: Path) -> None:
    quiet, loud = speechlike(6, level=0.01, seed=4), speechlike(6, level=0.04, seed=5)
    pcm = np.concatenate([quiet, loud])
    tl = Timeline(RATE, len(pcm), [ChapterMark(1, "One", 0, len(quiet)),
                                   ChapterMark(2, "Two", len(quiet), len(pcm))])
    stream, _ = loudness.normalise(lambda: chunks(pcm), RATE, target_lufs=-20, lossy=False)
    files = write_book(tmp_path / "book.m3u8", "flac", tl, stream,
                       EncodeOptions(meta={"title": "t"}), split=True)
    levels = [loudness.measure(ffmpeg.decode_pcm(f, RATE), RATE).integrated_lufs for f in files]
    assert levels[1] - levels[0] == pytest.approx(12.0, abs=1.5)


@pytest.mark.slow
@pytest.mark.parametrize("volume", [1.0, 0.2])
def test_the_bundled_voice_meets_the_target(
    tmp_path: Path, cpu_settings, volume: float  # type: ignore[no-untyped-def]
) -> None:
    from voicekit.synth.pipeline import RunOptions, Synthesizer
    from voicekit.text.model import Book, BookMeta, Chapter

    book = Book(BookMeta(title="Loud"), [Chapter(1, "Chapter One", [
        "It was a bright cold day in April, and the clocks were striking thirteen.",
        "\"Oh dear!\" she cried. What a strange thing to say, he thought, and walked on.",
    ])])
    synth = Synthesizer(cpu_settings.replace(volume=volume))
    out = tmp_path / "book.m4b"
    events = list(synth.run(synth.plan(book), out, RunOptions(fmt="m4b")))
    result = events[-1].result
    assert result is not None and result.loudness is not None
    assert result.loudness["target_lufs"] == -20
    got = loudness.measure(ffmpeg.decode_pcm(out, 22050), 22050)
    assert got.integrated_lufs == pytest.approx(-20, abs=1.0)
    assert got.true_peak_dbtp <= -3.0
    assert result.loudness["integrated_lufs"] == pytest.approx(got.integrated_lufs, abs=0.5)


def test_pieces_measured_apart_combine_to_the_whole_streams_loudness(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the chapters of a book are measured as they are encoded; joined, their blocks
    # must give what one pass over the whole book gives (cuts lie in silence)
    rate = 22050
    rng = np.random.default_rng(7)

    def bursts(seconds: float, level: float) -> np.ndarray:
        t = np.arange(int(seconds * rate)) / rate
        on = np.sin(2 * np.pi * 3 * t) > 0  # syllable-like on/off, a wide loudness range
        x = level * on * rng.normal(0, 1, len(t)) * np.sin(2 * np.pi * 220 * t)
        return np.clip(x * 32767, -32767, 32767).astype(np.int16)

    quiet, loud, pause = bursts(20, 0.1), bursts(30, 0.3), np.zeros(rate * 2, np.int16)
    whole = loudness.measure(iter([quiet, pause, pause, loud]), rate)
    blocks: list[loudness.Blocks] = []
    for n, part in enumerate(([quiet, pause], [pause, loud])):
        log: list[str] = []
        path = tmp_path / f"{n}.pcm"
        write_normalised(path, iter(part), rate, loudness.measuring(""), log)
        out = np.fromfile(path, dtype="<i2")
        assert np.array_equal(out, np.concatenate(part))  # no filters: measured, untouched
        blocks.append(loudness.parse_blocks(log[0]))
    joined = loudness.combine(blocks)
    assert abs(joined.integrated_lufs - whole.integrated_lufs) < 0.1
    assert abs(joined.lra - whole.lra) < 0.2
    assert joined.true_peak_dbtp == whole.true_peak_dbtp
    again = loudness.Blocks.from_dict(blocks[0].to_dict())  # kept beside an encoded piece
    assert again == blocks[0]


def test_silent_pieces_combine_to_silence() -> None:
    silent = loudness.Blocks((-120.7,) * 30, (-120.7,) * 30, -math.inf)
    found = loudness.combine([silent, silent])
    assert found.silent and found.lra == 0.0
