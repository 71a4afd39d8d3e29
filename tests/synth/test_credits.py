"""Opening and closing credits as chapters of their own (ACX wants them as files)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from voicekit.cli.main import app
from voicekit.synth.credits import add_credits, credit_lines
from voicekit.text.model import Book, BookMeta, Chapter


def test_credit_lines_name_title_authors_and_narrators() -> None:
    meta = BookMeta(title="Dune", authors=["Frank Herbert"], narrators=["A", "B", "C"])
    assert credit_lines(meta) == ["Dune.", "Written by Frank Herbert.", "Narrated by A, B and C."]
    assert credit_lines(BookMeta()) == []


def test_credits_wrap_the_book() -> None:
    book = Book(BookMeta(title="T", authors=["Ann"]), [Chapter(1, "One", ["x"]),
                                                      Chapter(2, "Two", ["y"])])
    add_credits(book)
    assert [c.title for c in book.chapters] == ["Opening Credits", "One", "Two",
                                                "Closing Credits"]
    assert book.chapters[-1].paragraphs == ["The end.", "T.", "Written by Ann."]
    empty = Book(BookMeta(), [Chapter(1, "One", ["x"])])
    add_credits(empty)  # nothing known to credit: no empty chapters
    assert len(empty.chapters) == 1


def test_synth_credits_in_the_plan_without_reading_their_titles(tmp_path: Path) -> None:
    text = tmp_path / "book.md"
    text.write_text("# One\n\nHello there.\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["synth", str(text), "--credits", "--title", "My Book",
                                      "--narrator", "Joe", "--dry-run", "--json", "--text"])
    assert result.exit_code == 0, result.output
    chapters = json.loads(result.stdout)["chapters"]
    assert [c["title"] for c in chapters] == ["Opening Credits", "One", "Closing Credits"]
    said = [s for paragraph in chapters[0]["sentences"] for s in paragraph]
    assert said == ["My Book.", "Narrated by Joe."]  # not "Opening Credits" aloud
    assert chapters[1]["sentences"][0] == ["One"]  # a book chapter's title still is
