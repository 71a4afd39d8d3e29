"""EPUB 2 and 3 to a Book: reading order, chapters, metadata and cover (ebooklib + lxml).

Reading order is the spine; items outside it (linear="no") are listed only
when they are matter, as skipped chapters. Chapters start where the table of
contents points (EPUB 3 nav, else EPUB 2 NCX; two levels deep, fragments
included, so one file can hold several chapters); without a usable TOC every
file starts a chapter and a file with several top headings is split at them.
Titles come from the TOC, else the first heading, else none (the audio then
says "Chapter N"). A file the TOC does not name continues the chapter before
it (long chapters are often split over files), unless it is front matter or
names itself as matter. Front and back matter (cover, title page, contents,
copyright, licence, index) is kept but marked skipped (see matter.py).

Sizes, chapters and TOC entries are bounded (epub_limits.py), and a document the
parser cannot read to its end is an error: no text is dropped without a word.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ebooklib import epub

from voicekit.errors import InputError
from voicekit.text import matter
from voicekit.text.epub_limits import MB, EpubLimits, over
from voicekit.text.epub_package import (
    check_container,
    read_metadata,
    read_package,
    split_href,
)
from voicekit.text.model import Book, BookMeta, Chapter
from voicekit.text.xhtml import (
    Block,
    Document,
    UnreadableMarkup,
    kind_from_semantics,
    local_name,
    parse_document,
    parse_root,
    semantics,
    strip_markup,
)

_DOC_TYPES = ("application/xhtml+xml", "text/html")
TOC_DEPTH = 2
"""TOC levels that start chapters: parts and chapters, not the sections inside them."""


@dataclass
class _Doc:
    path: str
    """File name relative to the OPF folder (ebooklib's ``file_name``)."""
    doc: Document
    declared: dict[str, str] = field(default_factory=dict)
    """Fragment ('' for the whole file) to the matter kind the guide or landmarks give."""
    linear: bool = True
    """False for spine items outside the reading order (often the cover page): listed
    only when they are matter, so the plan shows them as skipped."""


@dataclass
class _Cut:
    doc: int
    block: int
    title: str = ""
    kind: str = ""
    toc: bool = False
    depth: int = 0
    """TOC level of the entry that made the cut (0: not from the TOC)."""
    joined: bool = False
    """Whether a deeper entry's title was already added to this one's."""


@dataclass(frozen=True)
class _Entry:
    """One TOC entry that points into the reading order."""

    title: str
    target: str
    fragment: str
    depth: int


# --------------------------------------------------------------------------- entry point
def load_epub(path: Path, limits: EpubLimits | None = None) -> Book:
    """The book, read under ``limits`` (the defaults when None)."""
    limits = limits or EpubLimits()
    check_container(path, limits)
    book = read_package(path, limits)
    meta = read_metadata(book, path)
    docs = _spine(book, path, limits)
    if not any(d.doc.blocks for d in docs if d.linear):
        raise InputError(f"{path} has no readable text (its pages hold no text, only images?)")
    toc = _toc(book, {d.path for d in docs})
    if len(toc) > limits.chapters:
        raise over(path, f"has {len(toc)} table-of-contents entries", "chapters", limits.chapters)
    chapters = _chapters(docs, toc, meta)
    if not any(c.paragraphs for c in chapters):
        raise InputError(f"{path} has no readable text")
    return Book(meta=meta, chapters=chapters, source=path)


# --------------------------------------------------------------------------- spine and TOC
def _spine(book: Any, path: Path, limits: EpubLimits) -> list[_Doc]:
    declared = _declared_kinds(book)
    items = []
    seen: set[str] = set()
    for idref, linear in book.spine:
        item = book.get_item_with_id(idref)
        if item is None or item.file_name in seen:
            continue
        if not (isinstance(item, epub.EpubHtml) or item.media_type in _DOC_TYPES):
            continue
        seen.add(item.file_name)
        items.append((item, linear))
    # counted and sized before any is parsed: parsing is what costs memory and time
    if len(items) > limits.chapters:
        raise over(path, f"has {len(items)} documents in its reading order", "chapters",
                   limits.chapters)
    text = sum(len(item.content or b"") for item, _ in items)
    if text > limits.text_mb * MB:
        raise over(path, f"holds {text / MB:,.0f} MB of text", "text-mb", limits.text_mb,
                   " MB")
    docs: list[_Doc] = []
    for item, linear in items:
        try:
            document = parse_document(item.content or b"")
        except UnreadableMarkup as exc:
            raise InputError(
                f"{path}: {item.file_name} cannot be read to its end ({exc})",
                hint="the text after that point would be lost; repair the file, e.g. "
                "with Calibre's Edit book",
            ) from exc
        doc = _Doc(
            item.file_name,
            document,
            declared.get(item.file_name, {}),
            linear=(linear or "yes").lower() != "no",
        )
        if isinstance(item, epub.EpubNav):
            doc.declared.setdefault("", "toc")
        docs.append(doc)
    if not docs:
        raise InputError(f"{path} has no readable text (its spine lists no content documents)")
    return docs


def _declared_kinds(book: Any) -> dict[str, dict[str, str]]:
    """Matter kinds the book declares: EPUB 2 guide, EPUB 3 landmarks."""
    kinds: dict[str, dict[str, str]] = {}
    for ref in getattr(book, "guide", None) or []:
        kind = kind_from_semantics([ref.get("type") or ""])
        if kind and ref.get("href"):
            target, fragment = split_href(ref["href"])
            kinds.setdefault(target, {}).setdefault(fragment, kind)
    for nav in (i for i in book.get_items() if isinstance(i, epub.EpubNav)):
        root = parse_root(nav.content or b"")
        if root is None:
            continue
        base = posixpath.dirname(nav.file_name)
        for section in root.iter():
            if local_name(section.tag) != "nav" or "landmarks" not in semantics(section):
                continue
            for link in section.iter():
                if local_name(link.tag) == "a" and link.get("href"):
                    kind = kind_from_semantics(semantics(link))
                    if kind:
                        target, fragment = split_href(link.get("href"), base)
                        kinds.setdefault(target, {}).setdefault(fragment, kind)
    return kinds


def _toc(book: Any, paths: set[str]) -> list[_Entry]:
    """Flattened TOC entries that point into the reading order, down to TOC_DEPTH."""
    ncx = next((i for i in book.get_items() if isinstance(i, epub.EpubNcx)), None)
    ncx_dir = posixpath.dirname(ncx.file_name) if ncx is not None else ""
    entries: list[_Entry] = []

    def visit(nodes: Any, depth: int) -> None:
        for node in nodes or []:
            children = None
            if isinstance(node, tuple) and len(node) == 2:
                node, children = node
            href = getattr(node, "href", "") or ""
            title = strip_markup(str(getattr(node, "title", "") or ""))
            if href and depth <= TOC_DEPTH:
                target, fragment = split_href(href)
                if target not in paths:  # NCX links are relative to the NCX file
                    target, fragment = split_href(href, ncx_dir)
                if target in paths:
                    entries.append(_Entry(title, target, fragment, depth))
            if children:
                visit(children, depth + 1)

    visit(book.toc, 1)
    return entries


# --------------------------------------------------------------------------- chapters
def _mark_gutenberg(docs: list[_Doc]) -> None:
    """Older Gutenberg editions mark header and licence only in the text: tag those blocks."""
    flat = [(d, i) for d in docs for i in range(len(d.doc.blocks))]
    start = next(
        (n for n, (d, i) in enumerate(flat) if matter.PG_START.search(d.doc.blocks[i].text)), None
    )
    end = next(
        (n for n, (d, i) in enumerate(flat) if matter.PG_END.search(d.doc.blocks[i].text)), None
    )
    for n, (d, i) in enumerate(flat):
        if (start is not None and n <= start) or (end is not None and n >= end):
            d.doc.blocks[i].region = "license"


def _chapters(docs: list[_Doc], toc: list[_Entry], meta: BookMeta) -> list[Chapter]:
    _mark_gutenberg(docs)
    index = {d.path: n for n, d in enumerate(docs)}
    cuts: dict[tuple[int, int], _Cut] = {}

    def add(cut: _Cut) -> None:
        key = (cut.doc, cut.block)
        old = cuts.get(key)
        if old is None:
            cuts[key] = cut
            return
        # A part and its first chapter pointing at the same place: "Part One: Chapter 1".
        # Only one deeper entry joins: other entries at the same place (links to anchors
        # the file lacks, or repeats) would read as one endless title, so the first wins.
        if not old.title:
            old.title = cut.title
        elif (
            cut.title
            and cut.depth > old.depth > 0
            and not old.joined
            and matter.normalize_title(cut.title) not in matter.normalize_title(old.title)
        ):
            old.title = f"{old.title}: {cut.title}"
            old.joined = True
        old.kind = old.kind or cut.kind
        old.toc = old.toc or cut.toc
        old.depth = old.depth or cut.depth

    for entry in toc:
        n = index[entry.target]
        fragment = entry.fragment
        block = docs[n].doc.anchors.get(fragment, 0) if fragment else 0
        kind = docs[n].declared.get(fragment, "") if fragment else ""
        add(_Cut(n, block, entry.title, kind, True, depth=entry.depth))
    first_toc = min((c.doc, c.block) for c in cuts.values()) if cuts else None
    prev_region = ""
    for n, d in enumerate(docs):
        file_kind = d.doc.kind or d.declared.get("", "")
        front = first_toc is None or n <= first_toc[0]
        if (n, 0) in cuts:
            cuts[(n, 0)].kind = cuts[(n, 0)].kind or file_kind
        elif front or file_kind or not d.linear or _matter_before(cuts, docs, n):
            add(_Cut(n, 0, kind=file_kind))
        if first_toc is None:
            for b in _heading_splits(d.doc.blocks):
                add(_Cut(n, b))
        for b, blk in enumerate(d.doc.blocks):
            if blk.region != prev_region and (blk.region or prev_region) and (n, b) not in cuts:
                add(_Cut(n, b, kind=blk.region))
            prev_region = blk.region
    ordered = sorted(cuts.values(), key=lambda c: (c.doc, c.block))
    toc_titles = {matter.normalize_title(e.title) for e in toc if e.title}
    chapters: list[Chapter] = []
    for k, cut in enumerate(ordered):
        stop = (ordered[k + 1].doc, ordered[k + 1].block) if k + 1 < len(ordered) else None
        blocks = _blocks_between(docs, (cut.doc, cut.block), stop)
        chapter = _make_chapter(cut, blocks, docs, meta, first_toc, toc_titles)
        if chapter is not None:
            chapters.append(chapter)
    matter.skip_empty_front(chapters)
    for number, chapter in enumerate(chapters, 1):
        chapter.index = number
    return chapters


def _matter_before(cuts: dict[tuple[int, int], _Cut], docs: list[_Doc], n: int) -> bool:
    """Whether the file before ``n`` ends in matter (then ``n`` must not continue it)."""
    if n == 0:
        return False
    if not docs[n - 1].linear:
        return True
    before = [c for (doc, _), c in cuts.items() if doc < n]
    last = max(before, key=lambda c: (c.doc, c.block), default=None)
    tail = docs[n - 1].doc.blocks[-1].region if docs[n - 1].doc.blocks else ""
    return bool(tail or (last is not None and last.kind))


def _heading_splits(blocks: list[Block]) -> list[int]:
    """Without a TOC: split a file at its top headings when it has several."""
    levels = [b.heading for b in blocks if 0 < b.heading <= 3]
    if not levels:
        return []
    top = min(levels)
    starts = [i for i, b in enumerate(blocks) if b.heading == top]
    if len(starts) < 2:
        return []
    # consecutive top headings ("Chapter 1" / "The Storm") start one chapter
    return [i for j, i in enumerate(starts) if j == 0 or starts[j - 1] != i - 1]


def _blocks_between(
    docs: list[_Doc], start: tuple[int, int], stop: tuple[int, int] | None
) -> list[tuple[int, Block]]:
    out: list[tuple[int, Block]] = []
    for n in range(start[0], len(docs) if stop is None else stop[0] + 1):
        blocks = docs[n].doc.blocks
        lo = start[1] if n == start[0] else 0
        hi = stop[1] if stop is not None and n == stop[0] else len(blocks)
        out.extend((n, b) for b in blocks[lo:hi])
    return out


def _make_chapter(
    cut: _Cut,
    blocks: list[tuple[int, Block]],
    docs: list[_Doc],
    meta: BookMeta,
    first_toc: tuple[int, int] | None,
    toc_titles: set[str],
) -> Chapter | None:
    title = cut.title
    if not title:
        title = next((b.text for _, b in blocks[:3] if b.heading), "")
    norm_title = matter.normalize_title(title)
    body = list(blocks)
    while body and body[0][1].heading and matter.normalize_title(body[0][1].text) in norm_title:
        body.pop(0)  # the heading the title already says (read once, as the title)
    paragraphs = [b.paragraph for _, b in body]  # a section heading keeps its mark
    regions = {b.region for _, b in blocks}
    declared = cut.kind
    if not declared and len(regions) == 1:
        declared = regions.pop()
    if not declared and cut.block == 0 and not title:
        declared = matter.kind_from_title(docs[cut.doc].doc.title)
    front = (cut.doc, cut.block) < first_toc if first_toc else cut.doc == 0
    kind = matter.classify(
        title,
        paragraphs,
        declared=declared,
        front=front,
        book_title=meta.title,
        authors=meta.authors,
        toc_titles=toc_titles,
    )
    if kind == matter.BODY and (not docs[cut.doc].linear or not (paragraphs or title)):
        return None  # auxiliary content outside the reading order, or nothing at all
    if not title and kind != matter.BODY:
        title = matter.DEFAULT_TITLES.get(kind, "")
    return Chapter(
        index=0, title=title, paragraphs=paragraphs, included=kind == matter.BODY, kind=kind
    )
