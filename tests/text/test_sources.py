from __future__ import annotations

import io
from pathlib import Path

import pytest

from voicekit.errors import InputError
from voicekit.text.model import CODE, CODE_CLOSE, CODE_OPEN, LIST, TABLE, TABLE_HEADER
from voicekit.text.sources import load_source


def write(tmp_path: Path, name: str, data: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def test_plain_text_paragraphs_join_wrapped_lines(tmp_path: Path) -> None:
    book = load_source(write(tmp_path, "a.txt", "First line\nwrapped here.\n\n\nSecond para.\r\n"))
    assert [c.paragraphs for c in book.chapters] == [["First line wrapped here.", "Second para."]]
    assert book.meta.title == "a"


def test_plain_text_chapter_headings_start_chapters(tmp_path: Path) -> None:
    text = "Preface words.\n\nCHAPTER I.\n\nIt was dark.\n\nChapter 2: Day\n\nMorning came.\n"
    book = load_source(write(tmp_path, "b.txt", text))
    assert [(c.index, c.title, c.paragraphs) for c in book.chapters] == [
        (1, "", ["Preface words."]),
        (2, "CHAPTER I", ["It was dark."]),
        (3, "Chapter 2: Day", ["Morning came."]),
    ]


MARKDOWN = """# The Book

Intro with **bold**, `code`, a [link](http://example.com) and ![alt](x.png).

## One

First *para*
wrapped.

```
print("not spoken")
```

- item one
- item two

<div>raw html</div>

## Two

> quoted

| a | b |
|---|---|
| 1 | 2 |
"""


def test_markdown_headings_chapters_and_no_markup(tmp_path: Path) -> None:
    book = load_source(write(tmp_path, "m.md", MARKDOWN))
    assert book.meta.title == "The Book"
    assert [(c.title, c.paragraphs) for c in book.chapters] == [
        # one line under the book's heading is its title page, kept but not read by default
        ("The Book", [f"Intro with bold, {CODE_OPEN}code{CODE_CLOSE}, a link and."]),
        (
            "One",
            [
                "First para wrapped.",
                CODE + 'print("not spoken")',  # a code block: the plan reads it by --code
                LIST + "item one",
                LIST + "item two",
            ],
        ),
        ("Two", ["quoted", TABLE + TABLE_HEADER + "a\tb", TABLE + "1\t2"]),
    ]
    spoken = " ".join(p for c in book.chapters for p in c.paragraphs if not p.startswith(CODE))
    for markup in ("**", "http", "print", "<div>", "x.png", "|"):
        assert markup not in spoken


def test_markdown_single_level_headings_are_chapters(tmp_path: Path) -> None:
    book = load_source(write(tmp_path, "m.md", "# A\n\nx\n\n# B\n\ny\n"))
    assert [c.title for c in book.chapters] == ["A", "B"]
    assert book.meta.title == "m"


def test_markdown_title_page_is_the_books_title_not_a_chapter(tmp_path: Path) -> None:
    """Regression: "# Title / by Author / ## Chapter 1" made the author line a 6.6 s chapter."""
    text = (
        "# The Harbour\n\nby Ada Writer\n\n## Chapter 1\n\nIt rained.\n\n"
        "## Chapter 2\n\nIt cleared.\n"
    )
    book = load_source(write(tmp_path, "h.md", text))
    assert (book.meta.title, book.meta.authors) == ("The Harbour", ["Ada Writer"])
    first, *rest = book.chapters
    assert (first.title, first.kind, first.included) == ("The Harbour", "title", False)
    assert [(c.title, c.included) for c in rest] == [("Chapter 1", True), ("Chapter 2", True)]
    assert book.words == 4  # only the chapters are read


def test_markdown_title_page_with_same_level_chapters_needs_a_by_line(tmp_path: Path) -> None:
    text = "# The Harbour\n\nBy Ada Writer.\n\n# Chapter 1\n\nIt rained.\n\n# Chapter 2\n\nSun.\n"
    book = load_source(write(tmp_path, "h.md", text))
    assert (book.meta.title, book.meta.authors) == ("The Harbour", ["Ada Writer"])
    assert [(c.title, c.kind) for c in book.chapters] == [
        ("The Harbour", "title"), ("Chapter 1", "body"), ("Chapter 2", "body")
    ]
    # a short first section without a by-line is a chapter like the others
    book = load_source(write(tmp_path, "n.md", "# Notes\n\nShort.\n\n# More\n\nText.\n"))
    assert [(c.title, c.included) for c in book.chapters] == [("Notes", True), ("More", True)]


def test_markdown_introduction_under_the_title_is_still_read(tmp_path: Path) -> None:
    intro = "This introduction is long enough to be read aloud as the book's opening. " * 3
    text = f"# The Book\n\n{intro}\n\n## One\n\nText.\n"
    book = load_source(write(tmp_path, "i.md", text))
    assert book.meta.title == "The Book"
    assert [(c.title, c.included) for c in book.chapters] == [("", True), ("One", True)]


def test_stdin_is_read_as_markdown() -> None:
    book = load_source("-", stdin=io.BytesIO(b"# Hi\n\nHello *there*.\n"))
    assert book.source is None
    assert book.chapters[0].title == "Hi"
    assert book.chapters[0].paragraphs == ["Hello there."]


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    book = load_source(write(tmp_path, "bom.txt", b"\xef\xbb\xbfHello."))
    assert book.chapters[0].paragraphs == ["Hello."]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("latin1.txt", "caf\xe9".encode("latin-1"), "is not UTF-8 text (byte 0xe9 at offset 3)"),
        ("empty.txt", b"", "has no text to read"),
        ("blank.md", b"  \n\n\t\n", "has no text to read"),
        ("only-image.md", b"![a boat](boat.png)\n", "has no text to read"),
        ("binary.txt", b"\x00\x01\x02abc", "looks binary"),
        ("book.pdf", b"%PDF-1.4", "unsupported input type '.pdf'"),
    ],
)
def test_bad_inputs_are_clear_errors(tmp_path: Path, name: str, data: bytes, message: str
                                     ) -> None:
    with pytest.raises(InputError) as info:
        load_source(write(tmp_path, name, data))
    assert message in info.value.message


def test_missing_and_folder_inputs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="input not found"):
        load_source(tmp_path / "nope.txt")
    with pytest.raises(InputError, match="is a folder"):
        load_source(tmp_path)


def test_empty_stdin() -> None:
    with pytest.raises(InputError, match="standard input has no text"):
        load_source("-", stdin=io.BytesIO(b"\n"))
