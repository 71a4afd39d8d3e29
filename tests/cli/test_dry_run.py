"""``synth --dry-run``: the plan of an EPUB (chapters, words, skipped matter, estimates)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.text.epub_factory import build_epub, tiny_png
from voicekit.cli.main import app

runner = CliRunner()
CPU = ["--device", "cpu", "--backend", "ort"]


@pytest.fixture
def book(tmp_path: Path) -> Path:
    return build_epub(tmp_path / "harbour.epub", cover=tiny_png())


def _plan(*args: str | Path) -> dict:  # type: ignore[type-arg]
    result = runner.invoke(app, ["synth", *map(str, args), "--dry-run", "--json", *CPU])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_json_plan(book: Path) -> None:
    plan = _plan(book, "--format", "m4b")
    assert plan["title"] == "The Harbour" and plan["authors"] == ["Ada Writer"]
    assert plan["format"] == "m4b" and plan["output"].endswith("harbour.m4b")
    assert plan["cover"] == "image/png"
    chapters = plan["chapters"]
    assert all(set(c) >= {"index", "title", "words", "included", "est_seconds"} for c in chapters)
    assert [(c["index"], c["kind"], c["included"]) for c in chapters] == [
        (1, "cover", False), (2, "title", False), (3, "toc", False), (4, "copyright", False),
        (5, "body", True), (6, "body", True), (7, "body", True), (8, "license", False),
    ]  # fmt: skip
    assert [c["words"] for c in chapters if c["included"]] == [11, 7, 6]
    assert all(c["est_seconds"] > 0 for c in chapters if c["included"])
    assert all(c["est_seconds"] == 0 for c in chapters if not c["included"])
    assert plan["words"] == 24
    assert plan["device"] == "cpu" and plan["est_synthesis_seconds"] > 0


def test_text_plan_shows_skipped_matter_and_estimates(book: Path) -> None:
    result = runner.invoke(app, ["synth", str(book), "--dry-run", *CPU])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "The Harbour — Ada Writer" in out
    for needle in (
        "skip (cover)",
        "skip (title)",
        "skip (toc)",
        "skip (copyright)",
        "skip (license)",
        "Chapter 2: The Calm",
        "estimated audio",
        "synthesis on cpu (ort)",
        "no chapters, tags or cover; --format m4b has them",  # the default format is WAV
    ):
        assert needle in out, needle
    assert out.count("yes") == 3


def test_chapters_and_all_chapters_select(book: Path) -> None:
    chosen = _plan(book, "--chapters", "2,6-7")
    assert [c["index"] for c in chosen["chapters"] if c["included"]] == [2, 6, 7]
    everything = _plan(book, "--all-chapters")
    assert all(c["included"] for c in everything["chapters"])
    assert everything["words"] > chosen["words"]


def test_bad_chapter_spec(book: Path) -> None:
    result = runner.invoke(app, ["synth", str(book), "--dry-run", "--chapters", "9", *CPU])
    assert result.exit_code == 2
    assert "outside 1-8" in result.output and "Traceback" not in result.output


def test_dry_run_writes_nothing(book: Path) -> None:
    before = sorted(p.name for p in book.parent.iterdir())
    _plan(book, "--format", "mp3")
    assert sorted(p.name for p in book.parent.iterdir()) == before


def test_split_chapters_plan(book: Path) -> None:
    plan = _plan(book, "--split-chapters", "--format", "mp3", "-o", book.parent / "parts")
    assert plan["split_chapters"] is True
    assert plan["output"] == str(book.parent / "parts" / "harbour.m3u8")


def test_batch_plan_reports_a_broken_book_and_the_rest(tmp_path: Path, book: Path) -> None:
    broken = tmp_path / "broken.epub"
    broken.write_text("not a zip")
    result = runner.invoke(app, ["synth", str(book), str(broken), "--dry-run", "--json", *CPU])
    assert result.exit_code == 1
    books = json.loads(result.stdout)["books"]
    assert books[0]["title"] == "The Harbour"
    assert "not an EPUB" in books[1]["error"]


def test_text_plan_prints_bracketed_titles(tmp_path: Path) -> None:
    source = tmp_path / "notes [draft].md"
    source.write_text("# [Illustration] The Storm\n\nRain fell.\n", encoding="utf-8")
    result = runner.invoke(app, ["synth", str(source), "--dry-run", *CPU])
    assert result.exit_code == 0, result.output
    assert "[Illustration] The Storm" in result.output
    assert "notes [draft]" in result.output


def test_the_device_is_chosen_once_per_run(
    book: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: resolve_settings and Synthesizer.plan each chose the device."""
    from voicekit.synth import pipeline
    from voicekit.system import devices

    calls: list[tuple[str, str]] = []
    real = devices.choose_device

    def counting(device: str, backend: str) -> devices.DeviceChoice:
        calls.append((device, backend))
        return real(device, backend)

    monkeypatch.setattr(devices, "choose_device", counting)
    monkeypatch.setattr(pipeline, "choose_device", counting)
    for args in ([], CPU):
        calls.clear()
        result = runner.invoke(app, ["synth", str(book), "--dry-run", "--json", *args])
        assert result.exit_code == 0, result.output
        assert len(calls) == 1, calls
