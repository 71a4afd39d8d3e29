"""Delivery options: room tone at each file's head and tail, and resampling at encode time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voicekit.formats import ffmpeg
from voicekit.formats.chapter_files import write_book
from voicekit.formats.encoders import EncodeOptions, RoomTone

from .audio_helpers import ffmeta, timeline, tone

RATE = 16000


def test_room_tone_pads_and_moves_the_marks() -> None:
    tl = timeline([1.0, 2.0])
    padded, pcm = RoomTone(0.5, 1.0, -70).apply(tl, tone(tl))
    out = np.concatenate(list(pcm))
    assert padded.total == tl.total + RATE // 2 + RATE == len(out)
    assert [(m.start, m.end) for m in padded.chapters] == [
        (0, RATE // 2 + RATE), (RATE // 2 + RATE, padded.total)
    ]
    head = out[: RATE // 2].astype(np.float64) / 32768
    assert 20 * np.log10(np.sqrt(np.mean(head**2))) == pytest.approx(-70, abs=1.0)
    again = np.concatenate(list(RoomTone(0.5, 1.0, -70).apply(tl, tone(tl))[1]))
    assert np.array_equal(out, again)  # seeded: a rerun writes the same bytes


def test_without_a_level_the_padding_is_digital_silence() -> None:
    tl = timeline([1.0])
    _, pcm = RoomTone(0.25, 0.25, None).apply(tl, tone(tl))
    out = np.concatenate(list(pcm))
    assert not out[: RATE // 4].any() and not out[-RATE // 4 :].any()
    assert np.array_equal(out[RATE // 4 : -RATE // 4], np.concatenate(list(tone(tl))))


def test_split_files_each_get_head_and_tail_at_the_asked_rate(tmp_path: Path) -> None:
    tl = timeline([1.0, 1.5], ["One", "Two"])
    options = EncodeOptions(meta={"title": "Book"}, sample_rate=44100,
                            room_tone=RoomTone(0.75, 1.5, -72))
    files = write_book(tmp_path / "book.m3u8", "mp3", tl, tone(tl), options, split=True)
    for path, seconds in zip(files, (1.0, 1.5), strict=True):
        info = ffmpeg.probe(path)
        assert info.sample_rate == 44100
        assert info.seconds == pytest.approx(0.75 + seconds + 1.5, abs=0.06)


def test_resampled_m4b_keeps_its_chapter_times(tmp_path: Path) -> None:
    tl = timeline([1.0, 2.0])
    out = tmp_path / "book.m4b"
    write_book(out, "m4b", tl, tone(tl), EncodeOptions(meta={"title": "B"}, sample_rate=44100))
    assert ffmpeg.probe(out).sample_rate == 44100
    starts = [c.start for c in ffmeta(out).chapters]
    assert starts == pytest.approx([0.0, 1.0], abs=0.01)
