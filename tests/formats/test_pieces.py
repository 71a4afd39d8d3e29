"""Pieces joined by stream copy: packet for packet a single encode, with the same container."""

from __future__ import annotations

import itertools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.formats.audio_helpers import ffmeta, mp4_top_atoms
from tests.text.epub_factory import tiny_png
from voicekit.errors import InputError, SynthesisError
from voicekit.formats.encoders import EncodeOptions, encode_m4b
from voicekit.formats.ffmpeg import candidates, decode_pcm
from voicekit.formats.pieces import (
    cut_points,
    cut_step,
    encode_piece,
    join_pieces,
)
from voicekit.formats.timeline import ChapterMark, Timeline

RATE = 22050
META = {"title": "The Harbour", "authors": ["Ada Writer"], "date": "2001-02-03"}


def speech_like(seconds: list[float], rate: int = RATE) -> tuple[Timeline, np.ndarray]:
    """Chapters of noisy tone bursts; each chapter ends in 1 s of digital silence and
    starts with 0.2 s of it, as a synthesized book's pauses are."""
    rng = np.random.default_rng(7)
    marks, parts, pos = [], [], 0
    for n, length in enumerate(seconds, 1):
        count = round(length * rate)
        x = np.zeros(count, np.float64)
        t = np.arange(count) / rate
        lead, tail = round(0.2 * rate), round(1.0 * rate)
        word = round(0.25 * rate)
        for start in range(lead, count - tail - word, round(0.4 * rate)):  # words, with gaps
            span = slice(start, start + word)
            env = np.hanning(word)
            x[span] = env * (0.3 * np.sin(2 * np.pi * (150 + 40 * n) * t[span]))
            x[span] += env * rng.normal(0, 0.03, word)
        parts.append(np.rint(x * 32767).astype(np.int16))
        marks.append(ChapterMark(n, f"Chapter {n}", pos, pos + count))
        pos += count
    return Timeline(rate, pos, marks), np.concatenate(parts)


def blocks(pcm: np.ndarray, size: int = 4096) -> Iterator[np.ndarray]:
    for i in range(0, len(pcm), size):
        yield pcm[i : i + size]


def build(
    folder: Path, tl: Timeline, pcm: np.ndarray, options: EncodeOptions, out_rate: int | None = None
) -> tuple[Path, list[int]]:
    cuts = cut_points(tl, "m4b", out_rate)
    bounds = [0, *cuts, tl.total]
    pieces = []
    for n, (a, b) in enumerate(itertools.pairwise(bounds)):
        piece = folder / f"piece{n}.m4a"
        encode_piece(
            piece, blocks(pcm[a:b]), tl.sample_rate, length=b - a, bitrate=None, out_rate=out_rate
        )
        pieces.append(piece)
    joined = folder / "joined.m4b"
    join_pieces(joined, pieces, tl, options, out_rate=out_rate)
    return joined, cuts


def packet_times(binary: str, path: Path) -> list[tuple[int, int, int]]:
    """(dts, pts, duration) of every audio packet, read by stream copy (framecrc)."""
    out = subprocess.run(
        [binary, "-v", "error", "-i", str(path), "-map", "0:a", "-c", "copy",
         "-f", "framecrc", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rows = [line.split(",") for line in out.splitlines() if line and not line.startswith("#")]
    return [(int(r[1]), int(r[2]), int(r[3])) for r in rows]


def decoded(path: Path, rate: int, binary: str) -> np.ndarray:
    return np.concatenate(list(decode_pcm(path, rate, binary)))


def test_cut_points_are_whole_frames_nearest_each_chapter_start() -> None:
    marks = [ChapterMark(n, "", s, s + 10) for n, s in enumerate([0, 1500, 1600, 5000, 9990])]
    tl = Timeline(RATE, 10_000, marks)
    # 1500 -> 1024, 1600 -> 2048, 5000 -> 5120; 9990 -> 10240 is past the end
    assert cut_points(tl, "m4b") == [1024, 2048, 5120]
    near = [marks[0], ChapterMark(1, "", 1100, 2), ChapterMark(2, "", 1200, 3)]
    close = Timeline(RATE, 10_000, near)
    assert cut_points(close, "m4b") == [1024]  # two starts in one frame: one cut
    assert cut_step("m4b", 22050, 44100) == 512  # whole frames after resampling
    assert cut_step("m4b", 24000, 24000) == 1024
    with pytest.raises(InputError):
        cut_points(tl, "mp3")


@pytest.mark.parametrize("binary", candidates())
def test_join_is_packet_for_packet_a_single_encode(
    tmp_path: Path, binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VOICEKIT_FFMPEG", binary)
    tl, pcm = speech_like([3.1, 2.05, 2.6])
    joined, cuts = build(tmp_path, tl, pcm, EncodeOptions(meta=META))
    single = tmp_path / "single.m4b"
    encode_m4b(single, tl, blocks(pcm), EncodeOptions(meta=META))

    # same packets, same times: one priming packet, the last one trimmed to the book
    times = packet_times(binary, joined)
    assert times == packet_times(binary, single)
    assert times[0][1] == -1024
    # ffmpeg 5.1's own single encode can end a few samples long (170,888 for 170,887)
    assert abs(sum(d for _, _, d in times) - 1024 - tl.total) <= 1
    out = decoded(joined, RATE, binary)
    assert len(out) == len(decoded(single, RATE, binary))
    assert abs(len(out) - tl.total) < 1024  # ffmpeg 5.1 decodes the last frame whole

    assert [c.title for c in ffmeta(joined).chapters] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    for chapter, mark in zip(ffmeta(joined).chapters, tl.chapters, strict=True):
        assert abs(chapter.start - mark.start / RATE) < 1024 / RATE

    # the joins are silent and click-free: the decoded steps there are no larger than
    # the single encode's own codec noise in the same pauses
    steps = np.abs(np.diff(out.astype(np.int32)))
    near = np.zeros(len(steps), bool)
    for cut in cuts:
        near[cut - 2048 : cut + 2048] = True
    assert steps[near].max() <= max(8, steps[~near].max() // 100)


def test_joined_container_matches_encode_m4b(tmp_path: Path) -> None:
    from mutagen.mp4 import MP4

    cover = tmp_path / "cover.png"
    cover.write_bytes(tiny_png())
    tl, pcm = speech_like([2.5, 2.5])
    joined, _ = build(tmp_path, tl, pcm, EncodeOptions(meta=META, cover=cover))
    assert joined.read_bytes()[4:12] == b"ftypM4B "
    atoms = [name for name, _, _ in mp4_top_atoms(joined)]
    assert atoms.index(b"moov") < atoms.index(b"mdat")
    audio = MP4(joined)
    assert audio.info.codec == "mp4a.40.2"
    assert audio.tags["\xa9nam"] == ["The Harbour"] and audio.tags["stik"] == [2]
    assert bytes(audio.tags["covr"][0]) == tiny_png()
    assert [round(c.start, 3) for c in audio.chapters] == [0.0, 2.5]  # Nero chpl
    assert [c.title for c in audio.chapters] == ["Chapter 1", "Chapter 2"]


@pytest.mark.slow
def test_many_resampled_pieces_keep_exact_times(tmp_path: Path) -> None:
    """Thirty joins at 44.1 kHz from 22.05 kHz PCM: the concat offsets, kept in
    microseconds by ffmpeg, must not drift by a sample, and the book ends where a
    single encode resampled the same way ends."""
    binary = candidates()[0]
    tl, pcm = speech_like([1.3 + 0.01 * n for n in range(30)])
    joined, cuts = build(tmp_path, tl, pcm, EncodeOptions(), out_rate=44100)
    assert len(cuts) == 29
    times = packet_times(binary, joined)
    assert [p for _, p, _ in times] == [1024 * (n - 1) for n in range(len(times))]
    single = tmp_path / "single.m4b"
    encode_m4b(single, tl, blocks(pcm), EncodeOptions(sample_rate=44100))
    # all but the last packet's duration: ffmpeg 5.1's encoder trims the end by a few
    # dozen samples after resampling (49 for the pieces, 5 for the single encode)
    assert times[:-1] == packet_times(binary, single)[:-1]
    assert abs(sum(d for _, _, d in times) - 1024 - 2 * tl.total) < 1024


def test_piece_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    piece = tmp_path / "p.m4a"
    with pytest.raises(SynthesisError):
        encode_piece(piece, blocks(np.zeros(4096, np.int16)), RATE, length=4096, bitrate=None,
                     filters="nosuchfilter")  # fmt: skip
    assert list(tmp_path.iterdir()) == []
