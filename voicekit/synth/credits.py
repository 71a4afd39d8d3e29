"""Opening and closing credits (title, authors, narrators) as chapters of their own.

ACX asks for them as files of their own; with ``--split-chapters`` a chapter is a
file, so credits are chapters added around the book's (after ``--chapters`` chose
what to read). Their text is English ("Written by", "Narrated by").
"""

from __future__ import annotations

from voicekit.text.model import Book, BookMeta, Chapter

CREDITS_KIND = "credits"
"""A chapter whose title is a file name, never read aloud (the text says what it is)."""


def _people(names: list[str]) -> str:
    names = [n.strip() for n in names if n.strip()]
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def credit_lines(meta: BookMeta) -> list[str]:
    """What both credits say: the title, who wrote it, who reads it (as far as known)."""
    lines = [f"{meta.title.strip()}."] if meta.title.strip() else []
    if authors := _people(meta.authors):
        lines.append(f"Written by {authors}.")
    if narrators := _people(meta.narrators):
        lines.append(f"Narrated by {narrators}.")
    return lines


def add_credits(book: Book) -> None:
    """Put "Opening Credits" before the first chapter and "Closing Credits" after the last."""
    lines = credit_lines(book.meta)
    if not lines:
        return
    last = max((c.index for c in book.chapters), default=0)
    book.chapters.insert(0, Chapter(0, "Opening Credits", list(lines), kind=CREDITS_KIND))
    book.chapters.append(
        Chapter(last + 1, "Closing Credits", ["The end.", *lines], kind=CREDITS_KIND)
    )
