"""What a source becomes: a book of chapters of paragraphs, with its metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BookMeta:
    """Tags for the audiobook; EPUBs fill most of it, text files only the title."""

    title: str = ""
    authors: list[str] = field(default_factory=list)
    language: str = ""
    publisher: str = ""
    date: str = ""
    description: str = ""
    cover: bytes | None = field(default=None, repr=False)
    cover_mime: str = ""
    narrators: list[str] = field(default_factory=list)
    series: str = ""
    series_index: str = ""
    """The book's place in its series: "2", "2.5"."""
    warnings: list[str] = field(default_factory=list)
    """What the reader worked around (e.g. a cover the book names but lacks)."""


@dataclass
class Chapter:
    """A titled run of paragraphs; the unit of chapter markers and ``--chapters``."""

    index: int
    """1-based position in the book (what ``--chapters`` takes)."""
    title: str
    paragraphs: list[str]
    included: bool = True
    """False for front and back matter skipped by default."""
    kind: str = "body"
    """body, or why it is skipped by default: cover, title, toc, copyright, license, ..."""

    @property
    def words(self) -> int:
        return sum(len(p.split()) for p in self.paragraphs)


@dataclass
class Book:
    meta: BookMeta
    chapters: list[Chapter]
    source: Path | None = None
    """None for standard input."""

    @property
    def words(self) -> int:
        return sum(c.words for c in self.chapters if c.included)


# What kind of block a paragraph was in its source, for the normaliser (text/blocks.py).
# Paragraphs stay plain strings; a block other than prose starts with one of these
# private-use marks. Inside code, table and list blocks, "\n" separates lines, rows or items
# and "\t" a table's cells.
HEADING = "\ue101"
"""A heading inside a chapter (a section title)."""
CODE = "\ue102"
"""A code block (``<pre>``, a fenced or indented Markdown block): its lines as written."""
LIST = "\ue103"
"""A list: one item per line, each read as a sentence."""
TABLE = "\ue104"
"""A table: one row per line, cells by tab; the first row is the header when it says so."""
TABLE_HEADER = "\ue105"
"""Starts a table's first row when it is a header row (``<th>``, Markdown's header)."""
CODE_OPEN = "\ue110"
"""Starts inline code inside prose (``<code>``, Markdown backticks)."""
CODE_CLOSE = "\ue111"
"""Ends inline code inside prose."""
BLOCK_MARKS = (HEADING, CODE, LIST, TABLE)


def block_kind(paragraph: str) -> tuple[str, str]:
    """(mark or '' for prose, the paragraph without its mark)."""
    if paragraph and paragraph[0] in BLOCK_MARKS:
        return paragraph[0], paragraph[1:]
    return "", paragraph
