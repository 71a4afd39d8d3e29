"""Front and back matter that is not the book: which chapters to skip by default, and why.

A chapter's kind comes from, in order of trust: the publisher's own semantics
(epub:type/role on the content, EPUB 3 landmarks, the EPUB 2 guide), Project
Gutenberg's boilerplate, the chapter's title, and finally a look at its text
(a short page with "All rights reserved" and an ISBN is a copyright page).
Kinds other than ``body`` are skipped unless ``--all-chapters`` or
``--chapters`` asks for them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from voicekit.text.model import Chapter

BODY = "body"

# A title for a matter chapter the book left untitled.
DEFAULT_TITLES = {
    "cover": "Cover",
    "title": "Title page",
    "toc": "Contents",
    "copyright": "Copyright",
    "license": "License",
    "index": "Index",
}

_TITLE_PATTERNS = [
    ("cover", re.compile(r"^(?:front |book )?cover(?: page| image)?$")),
    ("title", re.compile(r"^(?:title(?: page)?|half ?title(?: page)?)$")),
    (
        "toc",
        re.compile(
            r"^(?:(?:table of )?contents|toc|list of (?:illustrations|figures|tables|maps|plates))$"
        ),
    ),
    (
        "copyright",
        re.compile(r"^(?:copyright(?: page| notice| information)?|colophon|imprint)$"),
    ),
    ("license", re.compile(r"^(?:licen[cs]e|the full project gutenberg licen[cs]e)$")),
    ("index", re.compile(r"^index$")),
]

# Project Gutenberg's header and licence, in every edition since the 1990s.
PG_START = re.compile(r"\*{3}\s*START OF (?:THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
PG_END = re.compile(r"\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)
_PG_TEXT = re.compile(
    r"project gutenberg(?:-tm)? licen[cs]e|this e-?book is for the use of anyone anywhere|"
    r"start of (?:the|this) project gutenberg|end of (?:the|this) project gutenberg",
    re.IGNORECASE,
)
_COPYRIGHT_TEXT = re.compile(
    r"all rights reserved|\bISBN[\s:-]*[\dX-]{10,}|©|\(c\) ?\d{4}|copyright ?(?:©|\(c\))? ?\d{4}|"
    r"library of congress cataloging|first published in",
    re.IGNORECASE,
)


# Headings that divide a book rather than hold text: kept even when nothing follows them.
_DIVIDER = re.compile(r"^(?:part|book|volume|section|act)\b")


def skip_empty_front(chapters: list[Chapter]) -> None:
    """Mark heading-only chapters before the text starts as title-page leftovers.

    Project Gutenberg's EPUBs list lines of the title page in the TOC
    ("THE MILLENNIUM FULCRUM EDITION 3.0"); read out, they are noise. A part
    divider ("Part One") before the first chapter is the book's, so it stays.
    """
    for chapter in chapters:
        if not chapter.included:
            continue
        if chapter.paragraphs:
            return
        if not _DIVIDER.match(normalize_title(chapter.title)):
            chapter.kind, chapter.included = "title", False


def normalize_title(text: str) -> str:
    """Lower case, no punctuation, single spaces: for comparing titles."""
    return re.sub(r"[^\w]+", " ", text.lower()).strip()


def kind_from_title(title: str) -> str:
    norm = normalize_title(title)
    for kind, pattern in _TITLE_PATTERNS:
        if pattern.match(norm):
            return kind
    return ""


def classify(
    title: str,
    paragraphs: list[str],
    *,
    declared: str = "",
    front: bool = False,
    book_title: str = "",
    authors: Iterable[str] = (),
    toc_titles: set[str] | None = None,
) -> str:
    """The kind of one chapter: ``body`` or the reason it is skipped by default.

    ``declared`` is what the book itself says (semantics, landmarks, guide);
    ``front`` is true for chapters before the first one the TOC names.
    """
    if declared:
        return declared
    # Text between *** START/END *** markers is told apart before this (epub._mark_gutenberg);
    # this catches a licence or header with no markers, by how it opens.
    if any(_PG_TEXT.search(p) for p in paragraphs[:5]):
        return "license"
    by_title = kind_from_title(title)
    if by_title:
        return by_title
    words = sum(len(p.split()) for p in paragraphs)
    text = " ".join(paragraphs)
    if words <= 400 and len(_COPYRIGHT_TEXT.findall(text)) >= 2:
        return "copyright"
    if toc_titles and len(paragraphs) >= 3:
        listed = sum(1 for p in paragraphs if normalize_title(p) in toc_titles)
        if listed >= 0.6 * len(paragraphs):
            return "toc"
    if title and words <= 80 and normalize_title(title) == normalize_title(book_title):
        return "title"  # a short page named like the book: its title page
    if front and 0 < words <= 80:
        norm = normalize_title(text)
        names = [normalize_title(book_title), *(normalize_title(a) for a in authors)]
        if any(n and n in norm for n in names):
            return "title"
    if front and words == 0 and not title:
        return "cover"  # an image-only page before the text starts
    return BODY
