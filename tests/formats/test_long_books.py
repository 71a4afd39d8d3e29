"""Books past the limits: more than 255 chapters, more than 24 hours.

Kept fast for a 2-core CI machine by using 8 kHz audio (the lowest rate AAC and MP3
take) and silence; the 25-hour M4B is the one slow test (about a minute).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.formats.audio_helpers import ffmeta, mp4_top_atoms, silence
from tests.text.epub_factory import tiny_png
from voicekit.formats.output import EncodeOptions, write_atomic
from voicekit.formats.tags import Tags, tag_mp3, tag_vorbis
from voicekit.formats.timeline import ChapterMark, Timeline

RATE = 8000
MANY = 300


def _many_chapters(seconds_each: float = 0.5) -> Timeline:
    per = round(seconds_each * RATE)
    marks = [ChapterMark(n, f"Chapter {n}", (n - 1) * per, n * per) for n in range(1, MANY + 1)]
    return Timeline(RATE, MANY * per, marks)


@pytest.mark.parametrize("fmt", ["m4b", "mp3", "opus", "flac"])
def test_more_than_255_chapters(tmp_path: Path, fmt: str) -> None:
    tl = _many_chapters()
    path = tmp_path / f"many.{fmt}"
    write_atomic(path, fmt, tl, silence(tl.total), EncodeOptions(bitrate=None, meta={"title": "M"}))
    chapters = ffmeta(path).chapters
    assert len(chapters) == MANY
    assert chapters[-1].title == f"Chapter {MANY}"
    assert chapters[-1].start == pytest.approx((MANY - 1) * 0.5, abs=0.2)


def test_m4b_past_255_chapters_keeps_every_chapter_in_the_chapter_track(tmp_path: Path) -> None:
    """ffmpeg's Nero chpl holds 255 at most; it is blanked so no reader sees a cut list."""
    from mutagen.mp4 import MP4

    tl = _many_chapters(0.25)
    path = tmp_path / "many.m4b"
    write_atomic(path, "m4b", tl, silence(tl.total), EncodeOptions(meta={"title": "M"}))
    audio = MP4(path)
    assert audio.chapters is None  # no truncated chpl left behind
    assert audio.tags["\xa9nam"] == ["M"]
    atoms = [name for name, _, _ in mp4_top_atoms(path)]
    assert atoms.index(b"moov") < atoms.index(b"mdat")
    starts = [c.start for c in ffmeta(path).chapters]  # the QuickTime chapter track
    assert starts == pytest.approx([i * 0.25 for i in range(MANY)], abs=0.001)


def test_mp3_past_255_chapters_nests_ctoc(tmp_path: Path) -> None:
    from mutagen.id3 import ID3

    tl = _many_chapters()
    path = tmp_path / "many.mp3"
    write_atomic(path, "mp3", tl, silence(tl.total), EncodeOptions(meta={"title": "M"}))
    id3 = ID3(path)
    tocs = {t.element_id: t for t in id3.getall("CTOC")}
    top = tocs["toc"]
    assert int(top.flags) & 2  # the one top-level table
    assert top.child_element_ids == ["toc1", "toc2"]
    assert [len(tocs[c].child_element_ids) for c in top.child_element_ids] == [255, 45]
    listed = tocs["toc1"].child_element_ids + tocs["toc2"].child_element_ids
    assert listed == [f"chp{i}" for i in range(MANY)]
    assert len(id3.getall("CHAP")) == MANY


def test_chapter_times_past_24_hours_in_id3_and_vorbis(tmp_path: Path) -> None:
    """The tag writers on their own: marks at 25 h on a short file (no day wrap, no overflow)."""
    from mutagen.flac import FLAC
    from mutagen.id3 import ID3

    day = 25 * 3600 * RATE
    tl = Timeline(
        RATE,
        day + RATE,
        [ChapterMark(1, "Start", 0, day), ChapterMark(2, "Next day", day, day + RATE)],
    )
    short = Timeline(RATE, RATE, [])
    for fmt in ("mp3", "flac"):
        write_atomic(tmp_path / f"a.{fmt}", fmt, short, silence(RATE), EncodeOptions())
    tag_mp3(tmp_path / "a.mp3", Tags(title="T"), tl.chapters, RATE)
    chaps = sorted(ID3(tmp_path / "a.mp3").getall("CHAP"), key=lambda c: c.start_time)
    assert chaps[1].start_time == 90_000_000 and chaps[1].end_time == 90_001_000
    tag_vorbis(tmp_path / "a.flac", "flac", Tags(title="T"), tl.chapters, RATE)
    assert FLAC(tmp_path / "a.flac")["CHAPTER002"] == ["25:00:00.000"]
    assert ffmeta(tmp_path / "a.flac").chapters[1].start == 90000.0


@pytest.mark.slow
def test_m4b_longer_than_a_day(tmp_path: Path) -> None:
    """25 hours of 8 kHz silence in 40 chapters: duration, chapters, tags and index read back."""
    from mutagen.mp4 import MP4

    from voicekit.formats.ffmpeg import probe

    hours = 25
    total = hours * 3600 * RATE
    per = total // 40
    marks = [ChapterMark(n, f"Hour block {n}", (n - 1) * per, n * per if n < 40 else total)
             for n in range(1, 41)]  # fmt: skip
    cover = tmp_path / "cover.png"
    cover.write_bytes(tiny_png())
    path = tmp_path / "day.m4b"
    options = EncodeOptions(meta={"title": "Long Day"}, cover=cover)
    write_atomic(path, "m4b", Timeline(RATE, total, marks), silence(total), options)
    info = probe(path)
    assert info.seconds == pytest.approx(hours * 3600, abs=1)
    audio = MP4(path)
    assert audio.info.length == pytest.approx(hours * 3600, abs=1)
    assert bytes(audio.tags["covr"][0]) == tiny_png()
    chapters = ffmeta(path).chapters
    assert len(chapters) == 40
    assert chapters[-1].start == pytest.approx(39 * per / RATE, abs=0.001)  # past 24 h
    assert chapters[-1].start > 24 * 3600
    assert [round(c.start, 3) for c in audio.chapters][-1] == round(39 * per / RATE, 3)  # chpl
    atoms = [name for name, _, _ in mp4_top_atoms(path)]
    assert atoms.index(b"moov") < atoms.index(b"mdat")
