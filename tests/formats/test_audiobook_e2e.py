"""End to end with the bundled voice: EPUB in, chaptered, tagged M4B/MP3 out (tiny texts)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.formats.audio_helpers import ffmeta, mp4_top_atoms
from tests.text.epub_factory import build_epub, tiny_png
from voicekit.cli.main import app
from voicekit.formats.ffmpeg import extract_cover

runner = CliRunner()
CPU = ["--device", "cpu", "--backend", "ort", "--chapter-silence", "0.3",
       "--paragraph-silence", "0.2"]  # fmt: skip
BODY = ["Chapter 1: The Storm", "Chapter 2: The Calm", "Chapter 3: Home"]

pytestmark = pytest.mark.slow


@pytest.fixture
def book(tmp_path: Path) -> Path:
    return build_epub(tmp_path / "harbour.epub", cover=tiny_png())


def test_epub_to_m4b(book: Path) -> None:
    from mutagen.mp4 import MP4

    result = runner.invoke(app, ["synth", str(book), "--format", "m4b", "-q", *CPU])
    assert result.exit_code == 0, result.output
    out = book.with_suffix(".m4b")
    chapters = ffmeta(out).chapters
    assert [c.title for c in chapters] == BODY  # matter skipped by default
    assert chapters[0].start == 0 and chapters[1].start > 1
    tags = MP4(out).tags
    assert tags["\xa9nam"] == ["The Harbour"] and tags["\xa9ART"] == ["Ada Writer"]
    assert tags["\xa9gen"] == ["Audiobook"] and tags["\xa9day"] == ["2001"]
    assert bytes(tags["covr"][0]) == tiny_png()
    atoms = [name for name, _, _ in mp4_top_atoms(out)]
    assert atoms.index(b"moov") < atoms.index(b"mdat")
    assert not list(book.parent.glob("*.voicekit-job"))  # the job folder went on success


def test_selected_chapters_to_mp3_then_convert_the_kept_job(book: Path) -> None:
    from mutagen.id3 import ID3

    part = book.parent / "part.mp3"
    result = runner.invoke(
        app, ["synth", str(book), "--chapters", "5,7", "-o", str(part), "--keep-work", "-q", *CPU]
    )
    assert result.exit_code == 0, result.output
    id3 = ID3(part)
    titles = [
        c.sub_frames["TIT2"].text[0] for c in sorted(id3.getall("CHAP"), key=lambda c: c.start_time)
    ]
    assert titles == ["Chapter 1: The Storm", "Chapter 3: Home"]
    assert id3.getall("APIC")[0].data == tiny_png()
    job = book.parent / "part.mp3.voicekit-job"
    assert (job / "job.json").is_file()
    # the kept job re-encodes to another format without the voice
    result = runner.invoke(app, ["convert", str(job), "-o", str(book.parent / "part.flac")])
    assert result.exit_code == 0, result.output
    meta = ffmeta(book.parent / "part.flac")
    assert [c.title for c in meta.chapters] == titles
    assert meta.tags["title"] == "The Harbour"
    assert extract_cover(book.parent / "part.flac") == tiny_png()


def test_split_chapters(book: Path) -> None:
    from mutagen.mp4 import MP4

    result = runner.invoke(app, ["synth", str(book), "--split-chapters", "-f", "m4b", "-q", *CPU])
    assert result.exit_code == 0, result.output
    folder = book.parent / "harbour"
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        "01 - Chapter 1 The Storm.m4b",
        "02 - Chapter 2 The Calm.m4b",
        "03 - Chapter 3 Home.m4b",
        "harbour.m3u8",
    ]
    second = MP4(folder / names[1]).tags
    assert second["trkn"] == [(2, 3)] and second["\xa9nam"] == ["Chapter 2: The Calm"]
    assert second["\xa9alb"] == ["The Harbour"]
    # an existing split output is kept without --force (its playlist marks it finished)
    again = runner.invoke(app, ["synth", str(book), "--split-chapters", "-f", "m4b", *CPU])
    assert again.exit_code == 3 and "exists" in again.output
