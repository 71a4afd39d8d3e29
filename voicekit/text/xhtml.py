"""One (X)HTML content document of an EPUB to blocks of spoken text.

A block is what becomes a paragraph (and a pause): ``<p>``, a heading, a list
item, a table row, a line ended by ``<br>``. What a listener should not hear is
dropped here: footnote markers and the notes themselves, page numbers, images
(and so their alt text), scripts, MathML, ruby annotations.

lxml's HTML parser is used for every document, XHTML included: it accepts the
HTML entities (``&nbsp;``) that EPUB 2 files use without their DTD, never loads
anything from the network, and keeps ``epub:type`` as a plain attribute. It does not
know an internal DTD subset (``<!DOCTYPE html [<!ENTITY ...>]>``), so that is taken
out first and its plain-text entities expanded here. Where the parser gives up before
the end (markup nested past its depth limit, a text node past its size limit), the
document raises UnreadableMarkup instead of quietly losing the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from lxml import etree
from lxml import html as lxml_html

from voicekit.text.model import (
    CODE,
    CODE_CLOSE,
    CODE_OPEN,
    HEADING,
    LIST,
    TABLE,
    TABLE_HEADER,
)

# Elements that start and end a block of text.
BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "tfoot",
        "thead",
        "tr",
        "ul",
    ]
)
# Elements whose text is never spoken (their tail text still is).
_SKIP_TAGS = frozenset(
    [
        "audio",
        "button",
        "canvas",
        "embed",
        "head",
        "iframe",
        "img",
        "input",
        "map",
        "math",
        "noscript",
        "object",
        "rp",
        "rt",
        "script",
        "select",
        "style",
        "svg",
        "template",
        "textarea",
        "title",
        "video",
    ]
)
# epub:type / role tokens of content that is not read in the flow of the text.
_SKIP_SEMANTICS = frozenset(
    {
        "pagebreak",
        "noteref",
        "footnote",
        "footnotes",
        "endnote",
        "rearnote",
        "rearnotes",
        "annoref",
        "annotation",
        "backlink",
        "doc-pagebreak",
        "doc-noteref",
        "doc-footnote",
        "doc-endnote",
        "doc-backlink",
        "doc-pagelist",
        "page-list",
    }
)
# Class names publishers use for page numbers and note markers (Project Gutenberg: pagenum).
_SKIP_CLASSES = frozenset(
    {"pagenum", "page-number", "pageno", "fnanchor", "noteref", "footnote-ref"}
)
# The text of a footnote marker: 1, [12], (3), *, †, a.
_MARKER = re.compile(r"^[\[(]?(?:\d{1,3}|[*†‡§¶#]{1,3}|[a-z])[\])]?\.?$")
_SPACE = re.compile(r"\s+")
_CELL = "\ue000"  # (private use) marks a table cell's end until the row's text is cleaned
# Inline elements whose text is code: read as words inside prose (text/readings.py).
_CODE_TAGS = frozenset({"code", "kbd", "samp", "tt", "var"})
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"), None)
_ENCODING_DECL = re.compile(rb"""^\s*<\?xml[^>]*encoding=["']([\w.:-]+)["']""")
_META_CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([\w.:-]+)""", re.IGNORECASE)
_ROOT_START = re.compile(r"<html[\s>]", re.IGNORECASE)
_DOCTYPE_SUBSET = re.compile(r"<!DOCTYPE(\s[^\[>]*)\[(.*?)\]\s*>", re.IGNORECASE | re.DOTALL)
# A general entity whose value is plain text: one that holds markup or other entities is
# not expanded, so nothing expands recursively ("billion laughs").
_ENTITY_DECL = re.compile(r"""<!ENTITY\s+([A-Za-z_][\w.-]*)\s+(?:"([^"<&%]*)"|'([^'<&%]*)')\s*>""")
_ENTITY_REF = re.compile(r"&([A-Za-z_][\w.-]*);")

# Region kinds (front/back matter) named by epub:type or role on an element.
SEMANTIC_KINDS = {
    "cover": "cover",
    "doc-cover": "cover",
    "titlepage": "title",
    "halftitlepage": "title",
    "title-page": "title",
    "fulltitle": "title",
    "toc": "toc",
    "doc-toc": "toc",
    "landmarks": "toc",
    "loi": "toc",
    "lot": "toc",
    "copyright-page": "copyright",
    "colophon": "copyright",
    "doc-colophon": "copyright",
    "imprint": "copyright",
    "imprimatur": "copyright",
    "index": "index",
    "doc-index": "index",
}


class UnreadableMarkup(ValueError):
    """A document the parser could not read to its end: the text after that point would be
    lost. The message says where and why."""


@dataclass
class Block:
    text: str
    heading: int = 0
    """1-6 for ``<h1>``-``<h6>``, else 0."""
    anchors: tuple[str, ...] = ()
    """Element ids that start at or inside this block (where TOC links point)."""
    region: str = ""
    """Matter kind of the innermost enclosing element that names one (``license``, ``toc``...)."""

    @property
    def paragraph(self) -> str:
        """The text as a chapter's paragraph: a heading inside a chapter carries its mark."""
        return HEADING + self.text if self.heading else self.text


@dataclass
class Document:
    blocks: list[Block]
    title: str = ""
    """The ``<title>`` element's text."""
    kind: str = ""
    """Matter kind the ``<body>`` names with epub:type or role."""
    anchors: dict[str, int] = field(default_factory=dict)
    """Element id to the index of the block it starts."""


def decode_markup(raw: bytes) -> str:
    """Bytes to text by BOM, XML declaration or meta charset; UTF-8 otherwise (as EPUB requires)."""
    if raw.startswith(b"\xef\xbb\xbf"):
        return raw[3:].decode("utf-8", "replace")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", "replace")
    match = _ENCODING_DECL.match(raw) or _META_CHARSET.search(raw[:2048])
    encoding = match.group(1).decode("ascii") if match else "utf-8"
    try:
        return raw.decode(encoding, "replace")
    except LookupError:
        return raw.decode("utf-8", "replace")


def _internal_subset(text: str) -> str:
    """The document without its DOCTYPE's internal subset, its plain entities expanded.

    The HTML parser ends the DOCTYPE at the first ``>`` and reads the rest of the
    subset as text (a chapter that opens with "]>").
    """
    root = _ROOT_START.search(text)
    match = _DOCTYPE_SUBSET.search(text, 0, root.start() if root else len(text))
    if match is None:
        return text
    entities: dict[str, str] = {}
    for decl in _ENTITY_DECL.finditer(match.group(2)):
        entities.setdefault(decl.group(1), decl.group(2) or decl.group(3) or "")
    text = f"{text[: match.start()]}<!DOCTYPE{match.group(1).rstrip()}>{text[match.end() :]}"
    if not entities:
        return text
    growth = sum(
        text.count(f"&{name};") * (len(value) - len(name) - 2) for name, value in entities.items()
    )
    if growth > len(text):
        raise UnreadableMarkup("its own entities would expand it to more than twice its size")
    return _ENTITY_REF.sub(lambda m: entities.get(m.group(1), m.group(0)), text)


def _parse_failure(parser: etree.HTMLParser) -> str:
    """Why the parser stopped before the end, or '' if it read the whole document."""
    for error in parser.error_log:
        if error.level < etree.ErrorLevels.FATAL:
            continue
        message = error.message.lower()
        if "depth" in message:
            return f"its markup nests deeper than the parser's 256 levels at line {error.line}"
        if "huge" in message or "limit" in message:
            return f"a run of text near line {error.line} is longer than the parser's 10 MB"
        return f"the parser stopped at line {error.line}: {error.message.strip()}"
    return ""


def parse_root(raw: bytes, *, strict: bool = False) -> etree._Element | None:
    """The parsed document, or None when nothing parses (an empty file).

    ``strict``: raise UnreadableMarkup where the parser gave up before the end (for
    content documents, whose text would be lost; a nav page read for its links can do
    with what parsed).
    """
    text = decode_markup(raw)
    # lxml refuses str input that still carries an encoding declaration.
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)
    if not text.strip():
        return None
    if "<!DOCTYPE" in text[:4096].upper():
        try:
            text = _internal_subset(text)
        except UnreadableMarkup:
            if strict:
                raise
    parser = lxml_html.HTMLParser()
    try:
        root: etree._Element = lxml_html.document_fromstring(text, parser=parser)
    except (etree.ParserError, ValueError):
        return None
    if strict and (failure := _parse_failure(parser)):
        raise UnreadableMarkup(failure)
    return root


def local_name(tag: object) -> str:
    """``{ns}p`` or ``xhtml:p`` to ``p``; '' for comments and processing instructions."""
    if not isinstance(tag, str):
        return ""
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1].lower()


def semantics(el: etree._Element) -> set[str]:
    """The epub:type and role tokens of an element, lower-cased."""
    tokens: set[str] = set()
    for name, value in el.attrib.items():
        # epub:type arrives as "epub:type" (HTML parser) or "{ops-ns}type"; a bare
        # type= (<ol type="a">) is something else.
        if name == "role" or (name != "type" and local_name(name) == "type"):
            tokens.update(value.lower().split())
    return tokens


def kind_from_semantics(tokens: Iterable[str]) -> str:
    """The matter kind the first token naming one gives: epub:type, role, landmark, guide type.

    EPUB 2 guide types are a subset of SEMANTIC_KINDS, so the guide is read with it too.
    """
    return next((SEMANTIC_KINDS[t.lower()] for t in tokens if t.lower() in SEMANTIC_KINDS), "")


def element_kind(el: etree._Element) -> str:
    """Matter kind an element names: epub:type/role, or Project Gutenberg's boilerplate."""
    kind = kind_from_semantics(semantics(el))
    if kind:
        return kind
    ident = (el.get("id") or "").lower()
    classes = (el.get("class") or "").lower().split()
    if ident in ("pg-header", "pg-footer") or "pg-boilerplate" in classes:
        return "license"
    return ""


def skipped(el: etree._Element, tag: str) -> bool:
    # public: the read-along (synth/readalong_source.py) must skip exactly what we skip
    if tag in _SKIP_TAGS:
        return True
    if el.get("hidden") is not None or el.get("aria-hidden") == "true":
        return True
    if "display:none" in (el.get("style") or "").replace(" ", "").lower():
        return True
    if semantics(el) & _SKIP_SEMANTICS:
        return True
    if set((el.get("class") or "").lower().split()) & _SKIP_CLASSES:
        return True
    if tag in ("a", "sup"):
        return _is_note_marker(el, tag)
    return False


def _is_note_marker(el: etree._Element, tag: str) -> bool:
    """A link to a note (``<a href="#n1">[1]</a>``), or a ``<sup>`` holding one."""
    text = _SPACE.sub("", el.text_content())
    if not _MARKER.match(text):
        return False
    if tag == "a":
        return "#" in (el.get("href") or "")
    return any("#" in (a.get("href") or "") for a in el.iter() if local_name(a.tag) == "a")


class _Walker:
    def __init__(self) -> None:
        self.blocks: list[Block] = []
        self.parts: list[str] = []
        self.anchors: list[str] = []
        self.regions: list[str] = [""]
        self.heading = 0
        self.lists = 0  # depth of <ul>/<ol>: their blocks are list items
        self.header_rows = 0  # inside <thead>

    def flush(self, mark: str = "") -> None:
        text = clean_text("".join(self.parts))
        self.parts = []
        if text and not self.heading and self.lists and not mark:
            mark = LIST  # each item keeps its own block; the plan reads a list's items as one
        if text:
            self.add(mark + text if text[0] not in (CODE, LIST, TABLE) else text)
        # ids seen with no text yet stay pending: they belong to the next block

    def add(self, text: str) -> None:
        self.blocks.append(Block(text, self.heading, tuple(self.anchors), self.regions[-1]))
        self.anchors = []

    def code_block(self, el: etree._Element) -> None:
        """``<pre>`` (or a multi-line ``<code>``) keeps its lines: one code block."""
        self.flush()
        lines = [line.rstrip() for line in el.text_content().translate(_INVISIBLE).split("\n")]
        while lines and not lines[0].strip():
            lines.pop(0)
        while lines and not lines[-1].strip():
            lines.pop()
        if lines:
            self.add(CODE + "\n".join(line.replace("\u00a0", " ") for line in lines))

    def row(self, el: etree._Element) -> None:
        """A table row: cells by tab; a row of ``<th>`` (or in ``<thead>``) is the header."""
        self.flush()
        cells = [c for c in el if local_name(c.tag) in ("td", "th")]
        header = bool(cells) and (
            self.header_rows > 0 or all(local_name(c.tag) == "th" for c in cells)
        )
        texts = []
        for cell in cells:
            inner = _Walker()
            inner.walk_children(cell)
            texts.append(clean_text(" ".join(b.text.lstrip(LIST) for b in inner.blocks)))
            self.anchors.extend(a for b in inner.blocks for a in b.anchors)
        if any(texts):
            self.add(TABLE + (TABLE_HEADER if header else "") + "\t".join(texts))

    def walk_children(self, el: etree._Element) -> None:
        if el.text:
            self.parts.append(el.text)
        for child in el:
            self.walk(child)
        self.flush()

    def walk(self, el: etree._Element) -> None:
        tag = local_name(el.tag)
        if not tag:  # comment or processing instruction
            if el.tail:
                self.parts.append(el.tail)
            return
        if skipped(el, tag) or (tag == "sup" and self._unlinked_marker(el)):
            if el.tail:
                self.parts.append(el.tail)
            return
        special = self._special(el, tag)
        if special:
            if el.tail:
                self.parts.append(el.tail)
            return
        block = tag in BLOCK_TAGS
        if block:
            self.flush()
        ident = el.get("id") or (el.get("name") if tag == "a" else None)
        if ident:
            self.anchors.append(ident)
        kind = element_kind(el)
        if kind:
            self.regions.append(kind)
        level = int(tag[1]) if len(tag) == 2 and tag[0] == "h" and tag[1] in "123456" else 0
        if level:
            self.heading = level
        if tag in ("ul", "ol"):
            self.lists += 1
        if tag == "thead":
            self.header_rows += 1
        code = tag in _CODE_TAGS and not self.heading  # titles carry no marks
        if code:
            self.parts.append(CODE_OPEN)
        if el.text:
            self.parts.append(el.text)
        for child in el:
            self.walk(child)
        if code:
            self.parts.append(CODE_CLOSE)
        if tag in ("ul", "ol"):
            self.flush()
            self.lists -= 1
        if tag == "thead":
            self.header_rows -= 1
        if tag in ("td", "th"):
            self.parts.append(_CELL)  # a table row reads as "cell, cell, cell"
        if tag == "br" and self.heading:
            self.parts.append(" ")  # "Chapter I<br/>The Storm" is one heading
        elif block or tag == "br":  # <br> lines (verse, addresses) each get their pause
            self.flush()
        if level:
            self.heading = 0
        if kind:
            self.regions.pop()
        if el.tail:
            self.parts.append(el.tail)


    def _special(self, el: etree._Element, tag: str) -> bool:
        """Blocks read whole: code (kept line by line) and table rows (kept cell by cell)."""
        if tag == "pre" or (tag == "code" and "\n" in (el.text_content() or "").strip()):
            self.code_block(el)
            return True
        if tag == "tr":
            self.row(el)
            return True
        return False

    def _unlinked_marker(self, el: etree._Element) -> bool:
        """``word<sup>3</sup>``: a note marker without a link, after a word or punctuation.

        Not after a number or a short symbol: "10<sup>6</sup>", "mc<sup>2</sup>", "km<sup>2</sup>".
        """
        text = _SPACE.sub("", el.text_content())
        if not _MARKER.match(text) or not text.strip("[]()").isdigit():
            return False
        before = "".join(self.parts)[-4:]
        return bool(re.search(r"(?:[A-Za-z]{3}|[.,;:!?\"”’)])$", before))


def clean_text(text: str) -> str:
    text = _SPACE.sub(" ", text.translate(_INVISIBLE).replace("\u00a0", " ")).strip()
    if _CELL in text:  # cell ends: one ", " between cells, none for empty cells or at the end
        text = re.sub(f"[{_CELL} ]*{_CELL}[{_CELL} ]*", _CELL, text).strip(_CELL + " ")
        text = text.replace(_CELL, ", ")
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)  # space left where a marker was dropped
    return text.strip()


def parse_document(raw: bytes) -> Document:
    """Blocks of spoken text; UnreadableMarkup if the parser cannot read it to the end."""
    root = parse_root(raw, strict=True)
    if root is None:
        return Document(blocks=[])
    title_el = next((e for e in root.iter() if local_name(e.tag) == "title"), None)
    title = clean_text(title_el.text_content()) if title_el is not None else ""
    body = next((e for e in root.iter() if local_name(e.tag) == "body"), None)
    if body is None:
        return Document(blocks=[], title=title)
    walker = _Walker()
    walker.walk(body)
    walker.flush()
    anchors: dict[str, int] = {}
    for i, blk in enumerate(walker.blocks):
        for ident in blk.anchors:
            anchors.setdefault(ident, i)
    for ident in walker.anchors:  # ids after the last text: point past the end
        anchors.setdefault(ident, len(walker.blocks))
    return Document(blocks=walker.blocks, title=title, kind=element_kind(body), anchors=anchors)


def strip_markup(text: str) -> str:
    """Plain text of an HTML fragment (EPUB descriptions are often HTML)."""
    if "<" not in text:
        return clean_text(text)
    try:
        fragment = lxml_html.fragment_fromstring(text, create_parent="div")
    except (etree.ParserError, ValueError):
        return clean_text(re.sub(r"<[^>]+>", " ", text))
    return clean_text(fragment.text_content())
