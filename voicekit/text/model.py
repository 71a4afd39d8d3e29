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
