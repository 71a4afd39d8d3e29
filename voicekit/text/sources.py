"""Read a source into a Book: ``.txt``, ``.md``, ``.epub`` or standard input (``-``)."""

from __future__ import annotations

import codecs
import re
import sys
from pathlib import Path
from typing import BinaryIO

from voicekit.errors import InputError
from voicekit.text.epub_limits import EpubLimits
from voicekit.text.model import (
    BLOCK_MARKS,
    CODE,
    CODE_CLOSE,
    CODE_OPEN,
    HEADING,
    LIST,
    TABLE,
    TABLE_HEADER,
    Book,
    BookMeta,
    Chapter,
)

TEXT_SUFFIXES = {".txt", ".text"}
MARKDOWN_SUFFIXES = {".md", ".markdown"}
EPUB_SUFFIXES = {".epub"}
SUPPORTED = sorted(TEXT_SUFFIXES | MARKDOWN_SUFFIXES | EPUB_SUFFIXES)

# A paragraph that is only a heading like "CHAPTER XII." or "Chapter 3: The Storm".
_TEXT_HEADING = re.compile(
    r"^(?:chapter|book|part|prologue|epilogue|act)\b[\w .:'’,-]{0,80}$", re.IGNORECASE
)


def load_source(
    source: str | Path, *, stdin: BinaryIO | None = None, limits: EpubLimits | None = None
) -> Book:
    """Load a file path, or ``-`` for standard input (read as Markdown).

    ``limits`` bound what an EPUB may unpack to (the defaults when None)."""
    if str(source) == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        text = decode_text(stream.read(), "standard input")
        return parse_markdown(text, title="stdin", source=None)
    path = Path(source)
    if not path.exists():
        raise InputError(f"input not found: {path}")
    if path.is_dir():
        raise InputError(f"input is a folder, not a file: {path}")
    suffix = path.suffix.lower()
    if suffix in EPUB_SUFFIXES:
        from voicekit.text.epub import load_epub  # lazy: ebooklib and lxml, for EPUBs only

        return load_epub(path, limits)
    if suffix not in TEXT_SUFFIXES | MARKDOWN_SUFFIXES:
        raise InputError(
            f"unsupported input type '{suffix or path.name}' for {path}; "
            f"voicekit reads {', '.join(SUPPORTED)} or - for standard input"
        )
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    text = decode_text(raw, str(path))
    if suffix in MARKDOWN_SUFFIXES:
        return parse_markdown(text, title=path.stem, source=path)
    return parse_plain_text(text, title=path.stem, source=path)


_UTF16_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)


def _wide_encoding(raw: bytes) -> tuple[str, str, int] | None:
    """(codec, name, BOM length) of UTF-16/32 text, by its BOM or UTF-16's NUL pattern."""
    for bom, codec, name in _UTF16_BOMS:
        if raw.startswith(bom):
            return codec, name, len(bom)
    # Without a BOM: mostly-ASCII UTF-16 has a NUL in every other byte and none between.
    head = raw[:4096]
    if len(raw) % 2 or len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    for zeros, other, codec in ((odd, even, "utf-16-le"), (even, odd, "utf-16-be")):
        if other.count(0) == 0 and zeros.count(0) >= 0.9 * len(zeros):
            sample = head.decode(codec, "replace")
            # binary data can have the same pattern; text has no control characters
            if not any(ord(ch) < 32 and ch not in "\t\n\r\f" for ch in sample):
                return codec, "UTF-16", 0
    return None


def decode_text(raw: bytes, name: str) -> str:
    """UTF-8 (with or without BOM), or UTF-16/32 it recognises, or a clear error.

    Never guesses an 8-bit encoding: those need the user's word (iconv).
    """
    wide = _wide_encoding(raw)
    if wide is not None:
        codec, label, skip = wide
        try:
            text = raw[skip:].decode(codec)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{name} looks like {label} text but does not decode as {label} "
                f"(at byte {exc.start + skip})",
                hint="convert it to UTF-8, e.g. iconv -f utf-16 -t utf-8",
            ) from exc
    else:
        # The whole file, not only its start: a NUL further in fails later, far less clearly.
        nul = raw.find(b"\x00")
        if nul >= 0:
            raise InputError(f"{name} looks binary, not text (a NUL byte at offset {nul})")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"{name} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})",
                hint="convert it first, e.g. iconv -f latin1 -t utf-8",
            ) from exc
    if "\x00" in text:
        raise InputError(f"{name} looks binary, not text (it holds NUL characters)")
    if not says_something(text):
        raise InputError(f"{name} has no text to read")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def says_something(text: str) -> bool:
    """A letter or a digit somewhere: whitespace, zero-width characters and bare
    punctuation ("...", "* * *") give no speech, only a silent file."""
    return any(ch.isalnum() for ch in text)


def _paragraphs(text: str) -> list[str]:
    """Blank lines separate paragraphs; hard-wrapped lines inside one are joined."""
    blocks = re.split(r"\n\s*\n", text)
    return [
        " ".join(line.strip() for line in block.splitlines() if line.strip())
        for block in blocks
        if block.strip()
    ]


def parse_plain_text(text: str, *, title: str, source: Path | None) -> Book:
    """Paragraphs by blank lines; a lone "Chapter ..." line starts a chapter."""
    chapters: list[Chapter] = []
    current = Chapter(index=1, title="", paragraphs=[])
    for para in _paragraphs(text):
        if _TEXT_HEADING.match(para) and len(para) <= 90:
            if current.paragraphs or current.title:
                chapters.append(current)
            current = Chapter(index=len(chapters) + 1, title=para.rstrip(" ."), paragraphs=[])
        else:
            current.paragraphs.append(para)
    chapters.append(current)
    chapters = [c for c in chapters if c.paragraphs or c.title]
    return _finish(chapters, title, source)


def parse_markdown(text: str, *, title: str, source: Path | None) -> Book:
    """Headings start chapters; markup, images and link targets are not spoken.

    Deeper headings, list items, table rows, code blocks and inline code keep their
    kind (the marks of ``model.py``), so the normaliser reads each as such.

    The shallowest heading level starts chapters, except a single top heading at
    the very start when deeper ones follow: that one is the book's title.
    """
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    blocks: list[tuple[int, str]] = []  # (heading level or 0, text)
    lists = 0  # depth of bullet or ordered lists: their paragraphs are items
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            blocks.append((int(tok.tag[1:]), _inline_text(tokens[i + 1], code_marks=False)))
            i += 3
            continue
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            lists += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            lists -= 1
        elif tok.type in ("fence", "code_block"):  # kept line by line; read by --code
            code = tok.content.strip("\n")
            if code.strip():
                blocks.append((0, CODE + code))
        elif tok.type == "tr_open":  # one row: cells by tab, the header row marked
            cells: list[str] = []
            header = False
            while tokens[i].type != "tr_close":
                header = header or tokens[i].type == "th_open"
                if tokens[i].type == "inline":
                    cells.append(_inline_text(tokens[i]))
                i += 1
            if any(cells):
                blocks.append((0, TABLE + (TABLE_HEADER if header else "") + "\t".join(cells)))
        elif tok.type == "inline" and tokens[i - 1].type == "paragraph_open":
            spoken = _inline_text(tok)
            if spoken:
                blocks.append((0, (LIST if lists else "") + spoken))
        i += 1
    levels = [lvl for lvl, _ in blocks if lvl]
    book_title = title
    authors: list[str] = []
    title_page: list[str] = []
    if levels:
        top = min(levels)
        lead = _title_page(blocks)
        by_line = any(_BY_LINE.match(line) for line in lead)
        only_top = levels.count(top) == 1 and len(set(levels)) > 1
        if blocks[0][0] == top and (only_top or by_line):
            book_title = blocks[0][1] or title
            blocks = blocks[1 + len(lead) :]
            title_page = lead
            authors = [m.group(1) for line in lead if (m := _BY_LINE.match(line))]
            top = min(lvl for lvl, _ in blocks if lvl)
    else:
        top = 0
    chapters: list[Chapter] = []
    current = Chapter(index=1, title="", paragraphs=[])
    for level, content in blocks:
        if level and level <= top:
            if current.paragraphs or current.title:
                chapters.append(current)
            current = Chapter(index=len(chapters) + 1, title=content, paragraphs=[])
        elif level and content:  # a section heading inside the chapter
            current.paragraphs.append(HEADING + content)
        elif content:
            current.paragraphs.append(content)
    chapters.append(current)
    chapters = [c for c in chapters if c.paragraphs or c.title]
    if title_page:  # kept, like an EPUB's title page: skipped unless asked for
        chapters.insert(0, Chapter(1, book_title, title_page, included=False, kind="title"))
    book = _finish(chapters, book_title, source)
    book.meta.authors = authors
    return book


# A title page: the top heading, then a line or two (an author, a dedication) before
# the first chapter heading. Longer text there is an introduction and is read.
_TITLE_PAGE_LINES = 2
_TITLE_PAGE_CHARS = 160
_BY_LINE = re.compile(r"^by\s+(\S.*?)\.?$", re.IGNORECASE)


def _title_page(blocks: list[tuple[int, str]]) -> list[str]:
    """The short prose lines between the first heading and the next one, if a title page."""
    if not blocks or not blocks[0][0]:
        return []
    lead: list[str] = []
    for level, content in blocks[1:]:
        if level:
            return lead
        if (
            len(lead) == _TITLE_PAGE_LINES
            or len(content) > _TITLE_PAGE_CHARS
            or content[:1] in BLOCK_MARKS
        ):
            return []
        lead.append(content)
    return []  # no chapter heading follows: the heading and its text are the whole book


def _inline_text(token: object, *, code_marks: bool = True) -> str:
    parts: list[str] = []
    for child in getattr(token, "children", None) or []:
        kind = child.type
        if kind == "code_inline" and code_marks:  # read as words (text/readings.py)
            parts.append(f"{CODE_OPEN}{child.content}{CODE_CLOSE}")
        elif kind in ("text", "code_inline"):
            parts.append(child.content)
        elif kind in ("softbreak", "hardbreak"):
            parts.append(" ")
        # images, html_inline and link targets are not spoken; link text is a text child
    text = re.sub(r"\s+", " ", "".join(parts)).strip()
    return re.sub(r"\s+([.,;:!?])", r"\1", text)


def _finish(chapters: list[Chapter], title: str, source: Path | None) -> Book:
    if not any(says_something(p) for c in chapters for p in c.paragraphs):
        name = str(source) if source else "standard input"
        raise InputError(f"{name} has no text to read")
    for number, chapter in enumerate(chapters, 1):
        chapter.index = number
    return Book(meta=BookMeta(title=title), chapters=chapters, source=source)
