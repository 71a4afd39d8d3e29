"""M4B, MP3, Opus and FLAC: audio, chapters, tags and cover, read back with mutagen and ffmpeg."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.formats.audio_helpers import decoded_samples, ffmeta, mp4_top_atoms, timeline, tone
from tests.text.epub_factory import tiny_png
from voicekit.errors import InputError
from voicekit.formats.encoders import bitrate_for
from voicekit.formats.ffmpeg import candidates
from voicekit.formats.output import EncodeOptions, write_atomic

META = {
    "title": "The Harbour",
    "authors": ["Ada Writer", "Bo Pen"],
    "date": "2001-02-03",
    "description": "A short book.",
    "publisher": "Test Press",
    "language": "en",
}
SECONDS = [1.0, 1.5, 0.75]
STARTS = [0.0, 1.0, 2.5]
# Chapter starts as ffmpeg reports them: exact for MP4/FLAC/Opus; for MP3 ffmpeg
# subtracts the encoder delay it skips (about 0.07 s at 16 kHz).
TOLERANCE = {"m4b": 0.001, "flac": 0.001, "opus": 0.001, "mp3": 0.1}


@pytest.fixture(scope="module")
def cover_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cover") / "cover.png"
    path.write_bytes(tiny_png())
    return path


def _write(tmp_path: Path, fmt: str, cover: Path | None, bitrate: str | None = None) -> Path:
    tl = timeline(SECONDS)
    path = tmp_path / f"book.{fmt}"
    write_atomic(path, fmt, tl, tone(tl), EncodeOptions(bitrate=bitrate, meta=META, cover=cover))
    return path


@pytest.mark.parametrize("fmt", ["m4b", "mp3", "opus", "flac"])
def test_chapters_and_tags_as_ffmpeg_reads_them(tmp_path: Path, fmt: str, cover_file: Path) -> None:
    path = _write(tmp_path, fmt, cover_file)
    meta = ffmeta(path)
    assert [c.title for c in meta.chapters] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    for chapter, start in zip(meta.chapters, STARTS, strict=True):
        assert start - TOLERANCE[fmt] <= chapter.start <= start + 0.001
    tags = {k.lower(): v for k, v in meta.tags.items()}
    assert tags["title"] == "The Harbour"
    assert tags["album"] == "The Harbour"
    assert tags["genre"] == "Audiobook"
    assert "Ada Writer" in tags["artist"] and "Bo Pen" in tags["artist"]
    assert tags["date"].startswith("2001")
    from voicekit.formats.ffmpeg import extract_cover

    assert extract_cover(path) == tiny_png()
    rate = 48000 if fmt == "opus" else 16000
    assert decoded_samples(path, rate) == pytest.approx(sum(SECONDS) * rate, rel=0.01)


def test_m4b_container(tmp_path: Path, cover_file: Path) -> None:
    from mutagen.mp4 import MP4

    path = _write(tmp_path, "m4b", cover_file)
    assert path.read_bytes()[4:12] == b"ftypM4B "
    atoms = [name for name, _, _ in mp4_top_atoms(path)]
    assert atoms.index(b"moov") < atoms.index(b"mdat")  # index first: seekable while streaming
    audio = MP4(path)
    assert audio.info.codec == "mp4a.40.2"  # AAC-LC
    tags = audio.tags
    assert tags["\xa9nam"] == ["The Harbour"] and tags["\xa9alb"] == ["The Harbour"]
    assert tags["\xa9ART"] == ["Ada Writer, Bo Pen"] and tags["aART"] == ["Ada Writer, Bo Pen"]
    assert tags["\xa9gen"] == ["Audiobook"] and tags["\xa9day"] == ["2001"]
    assert tags["stik"] == [2]  # media kind Audiobook
    assert bytes(tags["covr"][0]) == tiny_png()
    assert [round(c.start, 3) for c in audio.chapters] == STARTS  # Nero chpl
    assert [c.title for c in audio.chapters] == ["Chapter 1", "Chapter 2", "Chapter 3"]


def test_mp3_id3_chapters_and_bitrate(tmp_path: Path, cover_file: Path) -> None:
    from mutagen.id3 import ID3
    from mutagen.mp3 import MP3

    path = _write(tmp_path, "mp3", cover_file)
    info = MP3(path).info
    assert info.bitrate == 64000 and info.channels == 1
    id3 = ID3(path)
    assert id3.version[:2] == (2, 3)
    assert id3["TIT2"].text == ["The Harbour"] and id3["TCON"].text == ["Audiobook"]
    assert id3["TPE1"].text == ["Ada Writer, Bo Pen"]
    assert id3.getall("APIC")[0].data == tiny_png()
    chaps = sorted(id3.getall("CHAP"), key=lambda c: c.start_time)
    assert [(c.start_time, c.end_time) for c in chaps] == [(0, 1000), (1000, 2500), (2500, 3250)]
    assert [c.sub_frames["TIT2"].text[0] for c in chaps] == ["Chapter 1", "Chapter 2", "Chapter 3"]
    (toc,) = id3.getall("CTOC")
    assert toc.child_element_ids == [c.element_id for c in chaps]
    assert int(toc.flags) == 3  # top level, ordered


def test_vorbis_comment_formats(tmp_path: Path, cover_file: Path) -> None:
    from mutagen.flac import FLAC, Picture
    from mutagen.oggopus import OggOpus

    flac = FLAC(_write(tmp_path, "flac", cover_file))
    assert flac["CHAPTER002"] == ["00:00:01.000"] and flac["CHAPTER002NAME"] == ["Chapter 2"]
    assert flac["ARTIST"] == ["Ada Writer", "Bo Pen"] and flac["ORGANIZATION"] == ["Test Press"]
    assert flac.pictures[0].data == tiny_png() and flac.pictures[0].type == 3
    opus = OggOpus(_write(tmp_path, "opus", cover_file))
    assert opus["CHAPTER003"] == ["00:00:02.500"] and opus["TITLE"] == ["The Harbour"]
    picture = Picture(base64.b64decode(opus["METADATA_BLOCK_PICTURE"][0]))
    assert picture.data == tiny_png() and picture.mime == "image/png"


def test_flac_is_lossless(tmp_path: Path) -> None:
    from voicekit.formats.ffmpeg import decode_pcm

    path = _write(tmp_path, "flac", None)
    got = np.concatenate(list(decode_pcm(path, 16000)))
    assert np.array_equal(got, np.concatenate(list(tone(timeline(SECONDS)))))


def test_bitrate_override(tmp_path: Path) -> None:
    from mutagen.mp3 import MP3

    assert MP3(_write(tmp_path, "mp3", None, bitrate="96k")).info.bitrate == 96000
    assert bitrate_for("m4b", None) == "64k" and bitrate_for("opus", None) == "32k"
    assert bitrate_for("mp3", "128000") == "128k"
    for bad in ("fast", "64kbps", "1k"):
        with pytest.raises(InputError, match="bitrate"):
            bitrate_for("mp3", bad)


def test_bad_bitrate_or_cover_fails_before_writing(tmp_path: Path) -> None:
    tl = timeline([0.5])
    with pytest.raises(InputError, match="bitrate"):
        write_atomic(tmp_path / "a.m4b", "m4b", tl, tone(tl), EncodeOptions(bitrate="loud"))
    with pytest.raises(InputError, match="cover image not found"):
        write_atomic(
            tmp_path / "a.mp3", "mp3", tl, tone(tl), EncodeOptions(cover=tmp_path / "missing.jpg")
        )
    not_image = tmp_path / "cover.jpg"
    not_image.write_text("not an image")
    with pytest.raises(InputError, match="not an image"):
        write_atomic(tmp_path / "a.mp3", "mp3", tl, tone(tl), EncodeOptions(cover=not_image))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cover.jpg"]


def test_gif_cover_is_converted_to_png(tmp_path: Path) -> None:
    from mutagen.mp4 import MP4

    gif = tmp_path / "cover.gif"
    gif.write_bytes(
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
        b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
    )
    path = _write(tmp_path, "m4b", gif)
    assert bytes(MP4(path).tags["covr"][0]).startswith(b"\x89PNG")


def test_no_chapters_no_tags_still_valid(tmp_path: Path) -> None:
    from voicekit.formats.timeline import Timeline

    tl = Timeline(16000, 8000, [])
    for fmt in ("m4b", "mp3", "opus", "flac"):
        path = tmp_path / f"bare.{fmt}"
        write_atomic(path, fmt, tl, iter([np.zeros(8000, np.int16)]), EncodeOptions())
        assert ffmeta(path).chapters == []
        assert decoded_samples(path, 16000) == pytest.approx(8000, rel=0.1)


def test_mp3_chapter_frames_are_written_in_time_order(tmp_path: Path) -> None:
    """Regression: mutagen sorts frames by size, so CHAP frames came out as Ending,
    Opening, Middle part, and ffprobe 5.x (and players built on it) listed them so."""
    from mutagen.id3 import ID3

    titles = ["Opening", "Middle part of the book", "Ending"]
    tl = timeline(SECONDS, titles)
    path = tmp_path / "order.mp3"
    write_atomic(path, "mp3", tl, tone(tl), EncodeOptions(meta=META))
    data = path.read_bytes()
    positions = [data.index(title.encode("utf-16-le")) for title in titles]  # v2.3: UTF-16
    assert positions == sorted(positions)
    assert [c.sub_frames["TIT2"].text[0] for c in ID3(path).getall("CHAP")] == titles
    assert [c.title for c in ffmeta(path).chapters] == titles


@pytest.mark.parametrize("binary", candidates())
def test_m4b_is_mono_with_every_ffmpeg(
    tmp_path: Path, binary: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decoders take the channels from the AAC config, which says mono with every ffmpeg.
    ffmpeg 5.1 (Debian 12) writes 2 in the MP4 sample entry's legacy channelcount field,
    which mutagen reports: the old test read that field and failed with the system ffmpeg."""
    monkeypatch.setenv("VOICEKIT_FFMPEG", binary)
    path = _write(tmp_path, "m4b", None)
    for reader in candidates():
        described = subprocess.run(
            [reader, "-hide_banner", "-i", str(path)], capture_output=True, text=True
        ).stderr
        assert re.search(r"Audio: aac \(LC\).*, 16000 Hz, mono,", described), (reader, described)
