"""One file per chapter: cut points, numbering, track tags, playlist."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.formats.audio_helpers import timeline, tone
from voicekit.errors import InputError, OutputError
from voicekit.formats.chapter_files import file_names, safe_name, write_book
from voicekit.formats.encoders import EncodeOptions
from voicekit.formats.ffmpeg import decode_pcm
from voicekit.formats.output import check_output
from voicekit.formats.timeline import Timeline

META = {"title": "The Harbour", "authors": ["Ada Writer"]}
GIF = (  # 1x1; tags take only JPEG or PNG, so it has to be converted
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)


def test_names() -> None:
    assert safe_name('What? A "Storm": Part 1/2.') == "What A Storm Part 1 2"
    assert safe_name("...") == "Chapter"
    assert file_names(["A", "B"], "m4b") == ["01 - A.m4b", "02 - B.m4b"]
    assert file_names(["x"] * 120, "mp3")[119] == "120 - x.mp3"  # padded to the count
    assert file_names(["x"] * 120, "mp3")[0] == "001 - x.mp3"


def test_flac_split_cuts_exactly_at_the_marks(tmp_path: Path) -> None:
    tl = timeline([1.0, 3.0, 2.0])
    playlist = tmp_path / "book" / "book.m3u8"
    playlist.parent.mkdir()
    write_book(playlist, "flac", tl, tone(tl), EncodeOptions(meta=META), split=True)
    names = ["01 - Chapter 1.flac", "02 - Chapter 2.flac", "03 - Chapter 3.flac"]
    assert sorted(p.name for p in playlist.parent.iterdir()) == [*names, "book.m3u8"]
    pieces = [np.concatenate(list(decode_pcm(playlist.parent / n, 16000))) for n in names]
    assert [len(p) for p in pieces] == [16000, 48000, 32000]
    assert np.array_equal(np.concatenate(pieces), np.concatenate(list(tone(tl))))
    assert playlist.read_text().splitlines() == [
        "#EXTM3U", "#PLAYLIST:The Harbour",
        "#EXTINF:1,Chapter 1", names[0],
        "#EXTINF:3,Chapter 2", names[1],
        "#EXTINF:2,Chapter 3", names[2],
    ]  # fmt: skip


def test_cover_is_prepared_once_for_all_chapter_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mutagen.id3 import ID3

    from voicekit.formats import ffmpeg

    conversions = []
    real_to_png = ffmpeg.to_png

    def counting_to_png(data: bytes, binary: str | None = None) -> bytes:
        conversions.append(data)
        return real_to_png(data, binary)

    monkeypatch.setattr(ffmpeg, "to_png", counting_to_png)
    gif = tmp_path / "cover.gif"
    gif.write_bytes(GIF)
    tl = timeline([1.0, 1.0, 1.0])
    write_book(tmp_path / "b.m3u8", "mp3", tl, tone(tl), EncodeOptions(cover=gif), split=True)
    assert len(conversions) == 1
    for n in (1, 2, 3):
        picture = ID3(tmp_path / f"0{n} - Chapter {n}.mp3").getall("APIC")[0]
        assert picture.mime == "image/png" and picture.data.startswith(b"\x89PNG")


def test_the_playlist_is_what_makes_a_split_output_exist(tmp_path: Path) -> None:
    # chapter files without their playlist are an interrupted run's: a rerun redoes them
    (tmp_path / "01 - Opening.mp3").write_bytes(b"partial")
    check_output(tmp_path / "book.m3u8", force=False)
    (tmp_path / "book.m3u8").write_text("#EXTM3U\n")
    with pytest.raises(OutputError, match="exists; use --force"):
        check_output(tmp_path / "book.m3u8", force=False)


def test_mp3_split_track_tags(tmp_path: Path) -> None:
    from mutagen.id3 import ID3

    tl = timeline([1.0, 2.0])
    playlist = tmp_path / "out.m3u8"
    write_book(playlist, "mp3", tl, tone(tl), EncodeOptions(meta=META), split=True)
    second = ID3(tmp_path / "02 - Chapter 2.mp3")
    assert second["TRCK"].text == ["2/2"]
    assert second["TIT2"].text == ["Chapter 2"] and second["TALB"].text == ["The Harbour"]
    assert second["TPE1"].text == ["Ada Writer"]
    assert not second.getall("CHAP")  # a chapter file is one chapter: no inner marks


def test_lead_in_goes_to_the_first_file(tmp_path: Path) -> None:
    from voicekit.formats.timeline import ChapterMark

    tl = Timeline(
        16000, 16000, [ChapterMark(1, "A", 4000, 10000), ChapterMark(2, "B", 10000, 16000)]
    )
    pcm = iter([np.ones(16000, np.int16)])
    write_book(tmp_path / "x.m3u8", "wav", tl, pcm, EncodeOptions(), split=True)
    sizes = [
        len(np.concatenate(list(decode_pcm(tmp_path / n, 16000))))
        for n in ("01 - A.wav", "02 - B.wav")
    ]
    assert sizes == [10000, 6000]


def test_nothing_to_split(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no chapters"):
        write_book(
            tmp_path / "x.m3u8",
            "mp3",
            Timeline(16000, 100, []),
            iter([np.zeros(100, np.int16)]),
            EncodeOptions(),
            split=True,
        )
    assert list(tmp_path.iterdir()) == []
