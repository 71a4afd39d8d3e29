"""Batches: inputs checked first, one broken book does not stop the others, outputs kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.text.epub_factory import build_epub
from voicekit.cli.main import app

runner = CliRunner()
CPU = ["--device", "cpu", "--backend", "ort", "--chapter-silence", "0.3"]
TINY = [("One", "<h1>One</h1><p>Hello there.</p>"), ("Two", "<h1>Two</h1><p>Good night.</p>")]


def _tiny_epub(path: Path, title: str) -> Path:
    return build_epub(path, title=title, chapters=TINY, front_matter=False, license_page=False)


@pytest.fixture
def books(tmp_path: Path) -> list[Path]:
    first = _tiny_epub(tmp_path / "first.epub", "First")
    broken = tmp_path / "broken.epub"
    broken.write_bytes(first.read_bytes()[:200])  # truncated download
    notes = tmp_path / "notes.md"
    notes.write_text("# Notes\n\nA short note.\n")
    return [first, broken, notes]


@pytest.mark.slow
def test_one_broken_book_does_not_stop_the_others(tmp_path: Path, books: list[Path]) -> None:
    out = tmp_path / "audiobooks"
    result = runner.invoke(
        app, ["synth", *map(str, books), "-o", str(out), "--format", "mp3", *CPU]
    )
    assert result.exit_code == 1  # some book failed
    assert sorted(p.name for p in out.iterdir()) == ["first.mp3", "notes.mp3"]
    text = result.output
    # the broken book is named before any work starts, then in the summary table
    error_at = text.index("broken.epub: ")
    assert "truncated" in text[error_at:].splitlines()[0]
    assert error_at < text.index("loading")
    table = text[text.index("voicekit batch") :]
    assert table.count("done") == 2 and table.count("failed") == 1
    assert "Traceback" not in text
    from mutagen.id3 import ID3

    tags = ID3(out / "first.mp3")
    assert tags["TIT2"].text == ["First"] and len(tags.getall("CHAP")) == 2


@pytest.mark.slow
def test_existing_outputs_kept_unless_force(tmp_path: Path) -> None:
    a = _tiny_epub(tmp_path / "a.epub", "A")
    b = tmp_path / "b.md"
    b.write_text("Just one line.\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.opus").write_bytes(b"keep me")
    args = ["synth", str(a), str(b), "-o", str(out), "-f", "opus", "--json", *CPU]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {r["input"]: r for r in json.loads(result.stdout)["books"]}
    assert rows[str(a)]["status"] == "kept" and rows[str(b)]["status"] == "done"
    assert (out / "a.opus").read_bytes() == b"keep me"
    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "a.opus").read_bytes()[:4] == b"OggS"


@pytest.mark.slow
def test_batch_split_chapters(tmp_path: Path) -> None:
    a = _tiny_epub(tmp_path / "a.epub", "A")
    b = _tiny_epub(tmp_path / "b.epub", "B")
    out = tmp_path / "out"
    result = runner.invoke(
        app, ["synth", str(a), str(b), "-o", str(out), "-f", "m4b", "--split-chapters", "-q", *CPU]
    )
    assert result.exit_code == 0, result.output
    for stem in ("a", "b"):
        assert sorted(p.name for p in (out / stem).iterdir()) == [
            "01 - One.m4b", "02 - Two.m4b", f"{stem}.m3u8"]  # fmt: skip


def test_batch_output_must_be_a_folder(tmp_path: Path, books: list[Path]) -> None:
    result = runner.invoke(
        app,
        [
            "synth",
            str(books[0]),
            str(books[2]),
            "-o",
            str(tmp_path / "both.m4b"),
            "--dry-run",
            *CPU,
        ],
    )
    assert result.exit_code == 2
    assert "-o must be a folder" in result.output


def test_batch_names_must_not_collide(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    one = tmp_path / "book.md"
    two = tmp_path / "x" / "book.md"
    for path in (one, two):
        path.write_text("Hi.\n")
    result = runner.invoke(app, ["synth", str(one), str(two), "--dry-run", *CPU])
    assert result.exit_code == 2 and "share a name" in result.output
