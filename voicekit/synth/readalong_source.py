"""The read-along from an EPUB's own markup: each spoken sentence wrapped in a span in place.

The source EPUB is copied whole (its styles, images, fonts, front matter); the content
documents that hold spoken sentences get a ``<span id>`` around each one, found by
walking their text in document order, as ``text/xhtml.py`` reads it (notes, page
numbers and images are skipped), and matching each sentence of the book
(``Bucket.sources``) with whitespace ignored. The whole book is matched in reading
order, the chapters voicekit skips too (they are not overlaid, but their text moves the
search past a contents page that repeats the chapter titles).

A sentence that crosses inline markup (``<em>``, ``<a>``) is wrapped whole when its ends
can be lifted to the same element (it starts or ends at an element's edge); otherwise
each of its pieces gets its own span (``s00012``, ``s00012-2``...) and the overlay points
at the first. A chapter's spoken title is looked for only in a heading before the
chapter's first sentence. What cannot be found (text voicekit says for code or tables, a
title the TOC gives that no heading holds) gets no span, and its clip is left out of the
overlay: the audio still plays it, the text is just not highlighted.
"""

from __future__ import annotations

import html.entities
import posixpath
import re
from array import array
from dataclasses import dataclass, field
from datetime import datetime, timezone
from urllib.parse import unquote

from lxml import etree
from lxml import html as lxml_html

from voicekit.synth.captions import Sentence
from voicekit.text.model import BLOCK_MARKS, HEADING, Book, block_kind
from voicekit.text.xhtml import BLOCK_TAGS, local_name, skipped

XHTML_NS = "http://www.w3.org/1999/xhtml"
OPF_NS = "http://www.idpf.org/2007/opf"
DC_NS = "http://purl.org/dc/elements/1.1/"
_DOC_TYPES = ("application/xhtml+xml", "text/html")
_INVISIBLE = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff")
_XML_ENTITIES = frozenset({"amp", "lt", "gt", "quot", "apos"})
_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
_BOUNDARY = "\x00"
_MATTER_REACH = 20_000
"""How far (characters) past the last match a paragraph of skipped matter is looked for."""
# Where text starts and ends a block for matching: the walker's blocks, and cells and
# rows (read as something else than their text, so they must not join a sentence).
_BREAKS = BLOCK_TAGS | {"td", "th", "br", "tr", "pre"}


class NotOverlayable(ValueError):
    """A source EPUB this module cannot rewrite (no package, a package that does not parse)."""


def _key(text: str) -> str:
    """What is matched: the text without whitespace, invisible characters or voicekit's marks."""
    return "".join(
        ch for ch in text
        if not ch.isspace() and ch not in _INVISIBLE and not "\ue100" <= ch <= "\ue1ff"
    )  # fmt: skip


@dataclass
class _Doc:
    path: str
    """Member name in the zip."""
    item_id: str
    tree: etree._ElementTree | None
    ids: set[str] = field(default_factory=set)
    spans: list[tuple[str, Sentence]] = field(default_factory=list)
    """(span id, the sentence) in document order."""


@dataclass
class _Match:
    sentence: Sentence
    start: int
    end: int
    sid: str = ""


class SourceBook:
    """The source EPUB, read for its package and its content documents' text."""

    def __init__(self, members: dict[str, bytes]) -> None:
        self.members = members
        container = _xml(members.get("META-INF/container.xml", b""))
        rootfile = (
            next((e for e in container.iter() if local_name(e.tag) == "rootfile"), None)
            if container is not None
            else None
        )
        self.opf_path = rootfile.get("full-path", "") if rootfile is not None else ""
        opf = _xml(members.get(self.opf_path, b""))
        if opf is None or local_name(opf.tag) != "package":
            raise NotOverlayable("its package document cannot be read")
        self.opf = opf
        self.base = posixpath.dirname(self.opf_path)
        self.items = {e.get("id", ""): e for e in opf.iter(f"{{{OPF_NS}}}item") if e.get("id")}
        self.taken: set[str] = set()
        """Manifest ids given to what voicekit adds."""
        self.docs: list[_Doc] = []
        seen: set[str] = set()
        for ref in opf.iter(f"{{{OPF_NS}}}itemref"):
            item = self.items.get(ref.get("idref", ""))
            if item is None or item.get("media-type") not in _DOC_TYPES:
                continue
            path = self.href(item.get("href", ""))
            if path in seen or path not in members:
                continue
            seen.add(path)
            tree = _xhtml(members[path])
            doc = _Doc(path, item.get("id", ""), tree)
            if tree is not None:
                doc.ids = {v for e in tree.iter() if isinstance(e.tag, str) and (v := e.get("id"))}
            self.docs.append(doc)
        self.keys: list[str] = []
        self.seg_of = array("i")
        self.off_of = array("i")
        self.segments: list[tuple[int, etree._Element, str, bool]] = []
        """(doc index, element, "text" or "tail", in a heading)."""
        for n, doc in enumerate(self.docs):
            if doc.tree is not None:
                body = next((e for e in doc.tree.iter() if local_name(e.tag) == "body"), None)
                if body is not None:
                    self._walk(n, body, False)
            self._boundary()
        self.text = "".join(self.keys)

    def href(self, href: str) -> str:
        return posixpath.normpath(posixpath.join(self.base, unquote(href.split("#")[0])))

    # ------------------------------------------------------------------ the text stream
    def _boundary(self) -> None:
        if self.keys and self.keys[-1] != _BOUNDARY:
            self.keys.append(_BOUNDARY)
            self.seg_of.append(-1)
            self.off_of.append(-1)

    def _add(self, doc: int, el: etree._Element, attr: str, heading: bool) -> None:
        text = getattr(el, attr)
        if not text:
            return
        seg = len(self.segments)
        self.segments.append((doc, el, attr, heading))
        for i, ch in enumerate(text):
            if ch.isspace() or ch in _INVISIBLE:
                continue
            self.keys.append(ch)
            self.seg_of.append(seg)
            self.off_of.append(i)

    def _walk(self, doc: int, el: etree._Element, outer: bool) -> None:
        """Add an element's text, then its tail (which is in ``outer``'s heading or not)."""
        tag = local_name(el.tag)
        if tag and not skipped(el, tag):
            breaks = tag in _BREAKS
            heading = outer or (len(tag) == 2 and tag[0] == "h" and tag[1] in "123456")
            if breaks:
                self._boundary()
            self._add(doc, el, "text", heading)
            for child in el:
                self._walk(doc, child, heading)
            if breaks:
                self._boundary()
        if el.getparent() is not None:
            self._add(doc, el, "tail", outer)

    # ------------------------------------------------------------------ matching
    def find(
        self, text: str, cursor: int, heading: bool = False, within: int | None = None
    ) -> tuple[int, int] | None:
        """Where ``text`` is next from ``cursor`` (in a heading; ``within`` characters on)."""
        key = _key(text)
        if not key:
            return None
        stop = len(self.text) if within is None else cursor + within + len(key)
        at = self.text.find(key, cursor, stop)
        while at >= 0 and heading and not self.segments[self.seg_of[at]][3]:
            at = self.text.find(key, at + 1, stop)
        return None if at < 0 else (at, at + len(key))

    def match(self, book: Book, sentences: list[Sentence], titled: bool) -> int:
        """Wrap every sentence found in a span; the number found.

        ``sentences``: the book's spoken sentences in order (``captions.book_sentences``).
        """
        by_chapter: dict[int, list[Sentence]] = {}
        for s in sentences:
            by_chapter.setdefault(s.chapter, []).append(s)
        cursor = 0
        matches: list[_Match] = []
        for ci, chapter in enumerate(book.chapters):
            wanted = by_chapter.get(ci)
            if not wanted:  # skipped matter: its text only moves the search on
                for paragraph in chapter.paragraphs:
                    kind, body = block_kind(paragraph)
                    if kind in BLOCK_MARKS and kind != HEADING:  # list, table, code: joined
                        continue
                    # only close by: a line of a contents page must not jump a chapter
                    found = self.find(body, cursor, within=_MATTER_REACH)
                    if found:
                        cursor = found[1]
                continue
            # the spoken title is paragraph 0 (plan.spoken_blocks), when there is one
            spoken_title = titled and bool(chapter.title) and chapter.kind != "credits"
            first_is_title = spoken_title and wanted[0].paragraph == 0
            title = wanted[0] if first_is_title else None
            body_sentences = wanted[1:] if title is not None else wanted
            start = cursor
            for s in body_sentences:
                found = self.find(s.text, cursor)
                if found:
                    matches.append(_Match(s, *found))
                    cursor = found[1]
            if title is not None:
                first = next((m.start for m in matches if m.start >= start), None)
                found = self.find(title.text, start, heading=True)
                if (
                    found
                    and (first is None or found[1] <= first)
                    and self._same_doc(found[0], first)
                ):
                    matches.append(_Match(title, *found))
                    cursor = max(cursor, found[1])
        matches.sort(key=lambda m: m.start)
        return self._wrap_all(matches)

    def _same_doc(self, at: int, other: int | None) -> bool:
        if other is None:
            return True
        return self.segments[self.seg_of[at]][0] == self.segments[self.seg_of[other]][0]

    # ------------------------------------------------------------------ wrapping
    def _wrap_all(self, matches: list[_Match]) -> int:
        for n, m in enumerate(matches, 1):
            doc = self.docs[self.segments[self.seg_of[m.start]][0]]
            sid = f"s{n:05d}"
            while sid in doc.ids:
                sid = "vk-" + sid
            doc.ids.add(sid)
            m.sid = sid
        # last first: wrapping changes only the text at and after the range's start
        for m in reversed(matches):
            self._wrap(m)
        for m in matches:
            doc = self.docs[self.segments[self.seg_of[m.start]][0]]
            doc.spans.append((m.sid, m.sentence))
        return len(matches)

    def _position(self, at: int, end: bool) -> tuple[etree._Element, int, int]:
        """(container, child index or -1 for its text, offset) of a key character."""
        _, el, attr, _ = self.segments[self.seg_of[at]]
        offset = self.off_of[at] + (1 if end else 0)
        if attr == "text":
            return el, -1, offset
        parent = el.getparent()
        return parent, parent.index(el), offset

    def _wrap(self, m: _Match) -> None:
        start = self._position(m.start, False)
        end = self._position(m.end - 1, True)
        lifted = _lift(start, end)
        if lifted is not None:
            _wrap_range(*lifted, m.sid)
            return
        pieces = []
        for seg in range(self.seg_of[m.start], self.seg_of[m.end - 1] + 1):
            _, el, attr, _ = self.segments[seg]
            text = getattr(el, attr) or ""
            lo = self.off_of[m.start] if seg == self.seg_of[m.start] else 0
            hi = self.off_of[m.end - 1] + 1 if seg == self.seg_of[m.end - 1] else len(text)
            while lo < hi and text[lo].isspace():
                lo += 1
            while hi > lo and text[hi - 1].isspace():
                hi -= 1
            if lo < hi:
                container, index = (
                    (el, -1) if attr == "text" else (el.getparent(), el.getparent().index(el))
                )
                pieces.append((container, index, lo, hi))
        for k in range(len(pieces) - 1, -1, -1):
            container, index, lo, hi = pieces[k]
            sid = m.sid if k == 0 else f"{m.sid}-{k + 1}"
            _wrap_range((container, index, lo), (container, index, hi), sid)

    # ------------------------------------------------------------------ output
    def overlaid(self) -> list[_Doc]:
        return [d for d in self.docs if d.spans]

    def document(self, doc: _Doc) -> bytes:
        assert doc.tree is not None
        body = etree.tostring(doc.tree.getroot(), encoding="unicode")
        return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n' + body).encode()

    def unique_id(self, wanted: str) -> str:
        ident = wanted
        while ident in self.items or ident in self.taken:
            ident = "vk-" + ident
        self.taken.add(ident)
        return ident

    def package(
        self,
        overlays: list[tuple[_Doc, str, str]],
        audio: str,
        total: str,
        active_class: str,
        nav: str | None,
    ) -> bytes:
        """The package, EPUB 3: (document, SMIL member name, its duration) per overlay."""
        opf = self.opf
        opf.set("version", "3.0")
        metadata = opf.find(f"{{{OPF_NS}}}metadata")
        manifest = opf.find(f"{{{OPF_NS}}}manifest")
        if metadata is None or manifest is None:
            raise NotOverlayable("its package has no metadata or manifest")
        for el in metadata:  # EPUB 2's opf: attributes on DC elements are errors in EPUB 3
            for name in [a for a in el.attrib if a.startswith(f"{{{OPF_NS}}}")]:
                del el.attrib[name]
        for el in self.items.values():  # a book that had overlays gets voicekit's alone
            el.attrib.pop("media-overlay", None)
        for el in list(metadata):
            if el.get("property") in ("dcterms:modified", "media:duration", "media:active-class"):
                metadata.remove(el)
        modified = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        metas = [("dcterms:modified", None, modified)]
        items = [(self.unique_id("vk-audio"), self._rel(audio), "audio/mpeg", None)]
        for doc, smil, duration in overlays:
            ident = self.unique_id(f"smil-{doc.item_id}")
            self.items[doc.item_id].set("media-overlay", ident)
            items.append((ident, self._rel(smil), "application/smil+xml", None))
            metas.append(("media:duration", f"#{ident}", duration))
        metas.append(("media:duration", None, total))
        metas.append(("media:active-class", None, active_class))
        if nav is not None:
            items.append((self.unique_id("vk-nav"), self._rel(nav), "application/xhtml+xml", "nav"))
        for prop, refines, value in metas:
            meta = etree.SubElement(metadata, f"{{{OPF_NS}}}meta", property=prop)
            if refines:
                meta.set("refines", refines)
            meta.text = value
        for ident, href, media_type, props in items:
            item = etree.SubElement(manifest, f"{{{OPF_NS}}}item", id=ident, href=href)
            item.set("media-type", media_type)
            if props:
                item.set("properties", props)
        return etree.tostring(opf, xml_declaration=True, encoding="UTF-8")

    def has_nav(self) -> bool:
        return any("nav" in (e.get("properties") or "").split() for e in self.items.values())

    def nav_links(self) -> list[tuple[str, str]]:
        """(title, member path#fragment) from the NCX, for a nav an EPUB 2 book lacks."""
        ncx = next(
            (e for e in self.items.values() if e.get("media-type") == "application/x-dtbncx+xml"),
            None,
        )
        links: list[tuple[str, str]] = []
        ncx_path = self.href(ncx.get("href", "")) if ncx is not None else ""
        root = _xml(self.members.get(ncx_path, b"")) if ncx_path else None
        if root is not None:
            ncx_dir = posixpath.dirname(ncx_path)
            for point in root.iter("{*}navPoint"):
                label = next((t for t in point.iter("{*}text")), None)
                content = point.find("{*}content")
                if label is None or content is None or not content.get("src"):
                    continue
                src = content.get("src", "")
                target = posixpath.normpath(posixpath.join(ncx_dir, unquote(src.split("#")[0])))
                fragment = src.partition("#")[2]
                links.append((" ".join((label.text or "").split()),
                              target + (f"#{fragment}" if fragment else "")))  # fmt: skip
        if not links:
            links = [(posixpath.basename(d.path), d.path) for d in self.docs]
        return links

    def _rel(self, member: str) -> str:
        return posixpath.relpath(member, self.base or ".")


def _xml(raw: bytes) -> etree._Element | None:
    if not raw:
        return None
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.fromstring(raw, parser)
    except etree.XMLSyntaxError:
        return None


def _xhtml(raw: bytes) -> etree._ElementTree | None:
    """A content document as XML; HTML's named entities (EPUB 2 has them from its DTD)
    become character references first. None when it is not well-formed XML: it is then
    copied as it is, without overlay."""
    text = raw.decode("utf-8", "replace")

    def entity(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in _XML_ENTITIES or name not in html.entities.name2codepoint:
            return m.group(0)
        return f"&#{html.entities.name2codepoint[name]};"

    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", _ENTITY.sub(entity, text), count=1)
    text = re.sub(r"<!DOCTYPE[^>\[]*(\[.*?\])?\s*>", "", text, count=1, flags=re.DOTALL)
    # lxml.html's XHTML parser: XML, with the HTML element API xhtml.skipped uses
    parser = lxml_html.XHTMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        root = etree.fromstring(text.encode(), parser)
    except etree.XMLSyntaxError:
        return None
    if local_name(root.tag) != "html":
        return None
    return etree.ElementTree(root)


def _edge(container: etree._Element, index: int, offset: int, end: bool) -> bool:
    """Whether a position is at the start (or the end) of its container's text."""
    if end:
        if index < len(container) - 1 or (index == -1 and len(container)):
            return False
        text = (container.text if index == -1 else container[index].tail) or ""
        return not text[offset:].strip()
    text = container.text or ""
    return index == -1 and not text[:offset].strip()


def _liftable(position: tuple[etree._Element, int, int], end: bool) -> bool:
    """Whether a position at its inline element's edge can move out of it."""
    container = position[0]
    if container.getparent() is None or local_name(container.tag) in _BREAKS:
        return False
    return _edge(*position, end=end)


def _before(el: etree._Element) -> tuple[etree._Element, int, int]:
    """The position just before ``el`` in its parent."""
    parent = el.getparent()
    i = parent.index(el)
    before = (parent.text if i == 0 else parent[i - 1].tail) or ""
    return parent, i - 1, len(before)


def _lift(
    start: tuple[etree._Element, int, int], end: tuple[etree._Element, int, int]
) -> tuple[tuple[etree._Element, int, int], tuple[etree._Element, int, int]] | None:
    """Both ends in the same element, moved out of inline elements they start or end."""
    for _ in range(64):
        if start[0] is end[0]:
            return start, end
        s_anc = set(start[0].iterancestors())
        if end[0] in s_anc:  # the start is deeper: move it out of its container
            if not _liftable(start, False):
                return None
            start = _before(start[0])
        elif _liftable(end, True):  # the end is deeper (or they are cousins)
            container = end[0]
            parent = container.getparent()
            end = (parent, parent.index(container), 0)
        elif start[0] not in set(end[0].iterancestors()) and _liftable(start, False):
            start = _before(start[0])
        else:
            return None
    return None


def _wrap_range(
    start: tuple[etree._Element, int, int], end: tuple[etree._Element, int, int], sid: str
) -> None:
    """Wrap from ``start`` to ``end`` (same container) in a span with ``sid``."""
    container, i, lo = start
    _, j, hi = end
    ns = container.tag.rpartition("}")[0]
    span = etree.Element(f"{ns}}}span" if ns else "span", id=sid)

    def get(k: int) -> str:
        return (container.text if k == -1 else container[k].tail) or ""

    def put(k: int, value: str) -> None:
        if k == -1:
            container.text = value or None
        else:
            container[k].tail = value or None

    first = get(i)
    if i == j:
        span.text, rest = first[lo:hi], first[hi:]
        put(i, first[:lo])
        container.insert(i + 1, span)
        span.tail = rest or None
        return
    last = get(j)
    moved = list(container)[i + 1 : j + 1]
    moved[-1].tail = last[:hi] or None
    rest = last[hi:]
    span.text = first[lo:] or None
    put(i, first[:lo])
    container.insert(i + 1, span)
    for child in moved:
        span.append(child)
    span.tail = rest or None
