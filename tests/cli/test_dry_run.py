"""``synth --dry-run``: the plan of an EPUB (chapters, words, skipped matter, estimates)."""

from __future__ import annotations

import itertools
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
    wav = runner.invoke(app, ["synth", str(book), "--dry-run", "--format", "wav", *CPU])
    assert "no chapters, tags or cover; --format m4b has them" in wav.output
    result = runner.invoke(app, ["synth", str(book), "--dry-run", *CPU])
    assert result.exit_code == 0, result.output
    assert "no chapters, tags or cover" not in result.output  # a book is an M4B by default
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


# --- the reading script (--dry-run --text) -----------------------------------------------------

TECHNICAL = [
    (
        "About this manual",
        "<h1>1. About this manual</h1>"
        "<p>An up-to-date version can always be found at "
        "&lt;http://debian-live.alioth.debian.org/&gt;.</p>"
        "<p>Questions go to &lt;debian-live@lists.debian.org.&gt;</p>"
        "<h2>1.1 Conventions</h2>"
        "<p>Run the <code>lb config</code> command first.<sup>1</sup> "
        "See the reference[2] for more.</p>"
        "<aside epub:type='footnote' id='fn1'><p>A note read nowhere.</p></aside>",
    ),
    (
        "Managing a configuration",
        "<h1>6. Managing a configuration</h1>"
        "<h2>6.1 Dealing with configuration changes</h2>"
        "<p>Make a folder and configure it:</p>"
        "<pre>$ mkdir mylive &amp;&amp; cd mylive &amp;&amp; lb config\n"
        "lb config noauto \\\n    --debug</pre>"
        "<pre>#!/bin/sh\nset -e</pre>"
        "<p>You will need:</p>"
        "<ul><li>a working network</li><li>enough disk space</li></ul>"
        "<table><thead><tr><th>Option</th><th>Meaning</th></tr></thead>"
        "<tbody><tr><td>noauto</td><td>do not run automatically</td></tr>"
        "<tr><td>debug</td><td>print every step</td></tr></tbody></table>",
    ),
    (
        "The Harbour",
        "<h1>CHAPTER I. The Harbour</h1><p>Henry VIII visited in 1540, or so I heard.</p>",
    ),
]


@pytest.fixture
def manual(tmp_path: Path) -> Path:
    return build_epub(
        tmp_path / "manual.epub", title="Live Manual", chapters=TECHNICAL, license_page=False
    )


def _script(*args: str | Path) -> str:
    result = runner.invoke(app, ["synth", *map(str, args), "--dry-run", "--text", *CPU])
    assert result.exit_code == 0, result.output
    return result.stdout


def _read_lines(script: str) -> list[str]:
    return [line for line in script.splitlines() if line and not line.startswith("#")]


def test_script_of_a_technical_book_has_no_raw_markup(manual: Path) -> None:
    script = _script(manual)
    for raw in ("<", ">", "://", "$ ", "#!", "&&", "[2]", "point one"):
        assert raw not in "\n".join(_read_lines(script)), raw
    lines = _read_lines(script)
    assert (
        "An up-to-date version can always be found at debian-live dot alioth dot debian dot org."
        in lines
    )
    assert "Questions go to debian-live at lists dot debian dot org." in lines
    assert "Run the lb config command first." in lines and "See the reference for more." in lines
    assert lines.count("Code example omitted.") == 1  # two blocks in a row: one note
    assert "six one, Dealing with configuration changes" in lines
    assert [
        line for line in lines if line.endswith(("network.", "space."))
    ] == ["a working network.", "enough disk space."]
    assert "Option: noauto; Meaning: do not run automatically." in lines
    assert "Henry the Eighth visited in fifteen forty, or so I heard." in lines
    assert "A note read nowhere." not in script


def test_script_never_says_a_title_twice_in_a_row(manual: Path) -> None:
    lines = _read_lines(_script(manual))
    assert all(a != b for a, b in itertools.pairwise(lines))
    assert lines.count("About this manual") == 1
    assert "one." not in lines and "The Harbour" in lines
    assert sum(1 for line in lines if "Harbour" in line) == 1


def test_script_layout(manual: Path) -> None:
    script = _script(manual)
    assert script.startswith("# Live Manual\n")
    assert "## 4. About this manual\n\nAbout this manual\n\nAn up-to-date" in script
    assert "## 1. Live Manual (skipped: title)" in script


def test_code_read_brings_the_code_back(manual: Path) -> None:
    lines = _read_lines(_script(manual, "--code", "read"))
    assert "mkdir mylive and cd mylive and lb config." in lines
    assert "lb config noauto." in lines and "dash dash debug." in lines
    assert "shebang slash bin slash sh." in lines and "Code example omitted." not in lines
    skipped = _read_lines(_script(manual, "--code", "skip"))
    assert not any("mkdir" in line or "omitted" in line for line in skipped)


def test_reading_flags(manual: Path) -> None:
    dropped = _read_lines(_script(manual, "--heading-numbers", "drop", "--urls", "skip"))
    assert "Dealing with configuration changes" in dropped
    assert not any("dot org" in line for line in dropped)
    tables = _read_lines(_script(manual, "--tables", "skip", "--code-note", "Code here."))
    assert "Table omitted." in tables and "Code here." in tables
    assert not any("noauto" in line for line in tables)


def test_bad_reading_flag_is_one_line(manual: Path) -> None:
    result = runner.invoke(app, ["synth", str(manual), "--dry-run", "--code", "sing", *CPU])
    assert result.exit_code == 2
    assert "code = 'sing' must be one of note, read, skip" in result.output
    assert "Traceback" not in result.output


def test_text_needs_dry_run(manual: Path) -> None:
    result = runner.invoke(app, ["synth", str(manual), "--text", *CPU])
    assert result.exit_code == 2 and "--dry-run" in result.output


def test_json_text_adds_sentences(manual: Path) -> None:
    result = runner.invoke(app, ["synth", str(manual), "--dry-run", "--json", "--text", *CPU])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    body = [c for c in plan["chapters"] if c["included"]]
    assert body[0]["sentences"][0] == ["About this manual"]
    assert all(c["sentences"] == [] for c in plan["chapters"] if not c["included"])
    assert sum(len(s) for c in body for s in c["sentences"]) == plan["sentences"]


def test_other_script_is_skipped_with_a_warning(tmp_path: Path) -> None:
    source = tmp_path / "greek.md"
    source.write_text("# One\n\nThe word logos (λόγος) means word.\n", encoding="utf-8")
    result = runner.invoke(app, ["synth", str(source), "--dry-run", "--json", "--text", *CPU])
    plan = json.loads(result.stdout)
    assert plan["chapters"][0]["sentences"][1] == ["The word logos means word."]
    assert plan["warnings"] == ["chapter 1: skipped text in another script: 'λόγος'"]


def test_a_book_defaults_to_m4b_and_a_text_to_wav(book: Path, tmp_path: Path) -> None:
    """An EPUB wants chapters, tags and a cover, which WAV cannot carry."""
    text = tmp_path / "my.notes.txt"
    text.write_text("Hello there.\n", encoding="utf-8")
    assert _plan(book)["format"] == "m4b"
    assert _plan(book)["output"].endswith("harbour.m4b")
    assert _plan(book, "-o", tmp_path / "out")["format"] == "m4b"
    assert _plan(text)["output"].endswith("my.notes.wav")
    assert _plan(book, "--format", "mp3")["format"] == "mp3"
    assert _plan(book, "-o", tmp_path / "b.flac")["format"] == "flac"
