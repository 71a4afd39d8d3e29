"""Where chapters fall in a book's audio: what every encoder and chapter writer reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ChapterMark:
    index: int
    """The chapter's number in the book (what --chapters takes)."""
    title: str
    start: int
    """First sample."""
    end: int
    """One past the last sample (the pause after a chapter belongs to it)."""


@dataclass(frozen=True)
class Timeline:
    sample_rate: int
    total: int
    """Samples in the whole output."""
    chapters: list[ChapterMark]

    @property
    def seconds(self) -> float:
        return self.total / self.sample_rate
