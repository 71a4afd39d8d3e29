"""Hostile EPUBs for the reliability tests: each function writes one under a folder and
returns its path.

The zip is written by hand (``_write_zip``) so an entry can hold a deflate stream made
by repeating one independently compressed block: a 2 GB chapter then costs about 6 MB
and half a second to make, and its declared sizes are exact (the CRC is real too), so
nothing but voicekit's own limits stops a reader from unpacking it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

from tests.text.epub_factory import tiny_png as small_png

MB = 1 << 20
CHAPTER_TEXT = "<p>The tide turned at noon and the boats came home one by one.</p>\n"


@dataclass
class Entry:
    name: str
    payload: bytes
    """The bytes stored in the zip: raw deflate data (method 8) or the file itself (0)."""
    crc: int
    size: int
    """Uncompressed size, as declared in both headers."""
    method: int = 8


def stored(name: str, data: bytes | str) -> Entry:
    raw = data.encode() if isinstance(data, str) else data
    return Entry(name, raw, zlib.crc32(raw), len(raw), method=0)


def deflated(name: str, data: bytes | str) -> Entry:
    raw = data.encode() if isinstance(data, str) else data
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    return Entry(name, co.compress(raw) + co.flush(), zlib.crc32(raw), len(raw))


def repeated(name: str, head: bytes, unit: bytes, times: int, tail: bytes) -> Entry:
    """``head + unit * times + tail``, deflated without ever holding it whole.

    A full flush resets the compressor, so the block that encodes ``unit`` decodes the
    same wherever it stands and can simply be repeated.
    """
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = co.compress(head) + co.flush(zlib.Z_FULL_FLUSH)
    block = co.compress(unit) + co.flush(zlib.Z_FULL_FLUSH)
    last = co.compress(tail) + co.flush(zlib.Z_FINISH)
    crc = zlib.crc32(head)
    for _ in range(times):
        crc = zlib.crc32(unit, crc)
    crc = zlib.crc32(tail, crc)
    size = len(head) + len(unit) * times + len(tail)
    return Entry(name, first + block * times + last, crc, size)


def _write_zip(path: Path, entries: list[Entry]) -> Path:
    local = bytearray()
    central = bytearray()
    for e in entries:
        name = e.name.encode()
        offset = len(local)
        common = struct.pack(
            "<HHHHHIIIH", 20, 0, e.method, 0, 0x21, e.crc, len(e.payload), e.size, len(name)
        )
        local += struct.pack("<I", 0x04034B50) + common + struct.pack("<H", 0) + name + e.payload
        central += (
            struct.pack("<IH", 0x02014B50, 20)
            + common
            + struct.pack("<HHHHII", 0, 0, 0, 0, 0, offset)
            + name
        )
    end = struct.pack(
        "<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), len(local), 0
    )
    path.write_bytes(bytes(local + central + end))
    return path


# --------------------------------------------------------------------------- a package
CONTAINER = (
    '<?xml version="1.0"?><container version="1.0" '
    'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
    '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
    "</rootfiles></container>"
)


def xhtml(body: str, title: str = "Chapter", doctype: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n{doctype}'
        '<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f"<head><title>{title}</title></head><body>{body}</body></html>"
    )


def nav(links: list[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="{href}">{title}</a></li>' for href, title in links)
    return xhtml(f'<nav epub:type="toc" id="toc"><ol>{items}</ol></nav>', "Contents")


def opf(
    docs: list[str],
    *,
    images: dict[str, str] | None = None,
    cover: str = "",
) -> str:
    """A package: ``docs`` in the spine (as c0, c1...), a nav, and ``images`` (href: type)."""
    items = ['<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" '
             'properties="nav"/>']
    items += [
        f'<item id="c{n}" href="{href}" media-type="application/xhtml+xml"/>'
        for n, href in enumerate(docs)
    ]
    for n, (href, mime) in enumerate((images or {}).items()):
        props = ' properties="cover-image"' if href == cover else ""
        items.append(f'<item id="img{n}" href="{href}" media-type="{mime}"{props}/>')
    spine = "".join(f'<itemref idref="c{n}"/>' for n in range(len(docs)))
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">'
        '<dc:identifier id="id">hostile</dc:identifier><dc:title>Hostile</dc:title>'
        "<dc:language>en</dc:language></metadata>"
        f"<manifest>{''.join(items)}</manifest><spine>{spine}</spine></package>"
    )


def package(
    path: Path,
    docs: dict[str, Entry | str],
    *,
    toc: list[tuple[str, str]] | None = None,
    images: dict[str, tuple[str, bytes]] | None = None,
    cover: str = "",
) -> Path:
    """An EPUB 3 of ``docs`` (href under OEBPS/: text or a ready entry) in spine order."""
    links = toc if toc is not None else [(href, f"Chapter {n + 1}") for n, href in enumerate(docs)]
    entries = [
        stored("mimetype", "application/epub+zip"),
        deflated("META-INF/container.xml", CONTAINER),
        deflated(
            "OEBPS/content.opf",
            opf(list(docs), images={h: m for h, (m, _) in (images or {}).items()}, cover=cover),
        ),
        deflated("OEBPS/nav.xhtml", nav(links)),
    ]
    for href, doc in docs.items():
        if isinstance(doc, Entry):
            doc.name = f"OEBPS/{href}"
            entries.append(doc)
        else:
            entries.append(deflated(f"OEBPS/{href}", doc))
    for href, (_, data) in (images or {}).items():
        entries.append(stored(f"OEBPS/{href}", data))
    return _write_zip(path, entries)


def _big_chapter(text_mb: int) -> Entry:
    unit = (CHAPTER_TEXT * (MB // len(CHAPTER_TEXT))).encode()  # whole paragraphs, ~1 MB
    head = xhtml("<h1>Chapter 1</h1><div>", "Chapter 1").split("<div>")[0].encode() + b"<div>"
    return repeated("", head, unit, text_mb, b"</div></body></html>")


def _plain_chapter(n: int) -> str:
    return xhtml(f"<h1>Chapter {n}</h1>" + CHAPTER_TEXT * 3, f"Chapter {n}")


# --------------------------------------------------------------------------- the hostile ones
def zip_bomb(folder: Path, text_mb: int = 2048) -> Path:
    """One chapter that unpacks to ``text_mb`` MB of text (2 GB from about 6 MB)."""
    return package(
        folder / "bomb.epub", {"c1.xhtml": _plain_chapter(1), "c2.xhtml": _big_chapter(text_mb)}
    )


def many_entry_bomb(folder: Path, entries: int = 2000, kb_each: int = 1000) -> Path:
    """Many chapters, each small enough to pass a per-file check, together ~2 GB."""
    size = kb_each * 1024
    unit = (CHAPTER_TEXT * (size // len(CHAPTER_TEXT) + 1)).encode()[:size]
    head = xhtml("<div>").split("<div>")[0].encode() + b"<div>"
    docs: dict[str, Entry | str] = {}
    template = repeated("", head, unit, 1, b"</div></body></html>")  # made once, used by all
    for n in range(entries):
        docs[f"c{n}.xhtml"] = Entry("", template.payload, template.crc, template.size)
    return package(folder / "many.epub", docs, toc=[("c0.xhtml", "Chapter 1")])


def high_ratio_entry(folder: Path, text_mb: int = 40) -> Path:
    """One chapter small enough in size for every size limit, but packed over 1000:1."""
    return package(
        folder / "ratio.epub", {"c1.xhtml": _plain_chapter(1), "c2.xhtml": _big_chapter(text_mb)}
    )


def huge_gif(width: int = 16000, height: int = 16000) -> bytes:
    """A GIF of a few dozen bytes whose header (and only frame) claim width x height."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)  # 2-colour global table
    frame = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    lzw = b"\x02\x02\x44\x01\x00"  # minimum code size 2, one sub-block: clear, a pixel, end
    return b"GIF89a" + screen + b"\x00\x00\x00\xff\xff\xff" + frame + lzw + b";"


def huge_png(width: int = 16000, height: int = 16000) -> bytes:
    """A short PNG whose IHDR claims width x height."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )


def with_cover(folder: Path, image: bytes, name: str = "cover.png",
               mime: str = "image/png") -> Path:
    """A readable two-chapter book whose declared cover image is ``image``."""
    return package(
        folder / "cover.epub",
        {"c1.xhtml": _plain_chapter(1), "c2.xhtml": _plain_chapter(2)},
        images={name: (mime, image)},
        cover=name,
    )


def huge_cover(folder: Path, kind: str = "gif") -> Path:
    """A book whose cover is a tiny GIF or PNG claiming 16000x16000 pixels."""
    if kind == "gif":
        return with_cover(folder, huge_gif(), "cover.gif", "image/gif")
    return with_cover(folder, huge_png())


def truncated_cover(folder: Path) -> Path:
    """A book whose cover PNG was cut short (no IEND, half its data)."""
    image = small_png(64, 64)
    return with_cover(folder, image[: len(image) // 2])


def deep_nesting(folder: Path, depth: int = 5000) -> Path:
    """A chapter whose text sits below ``depth`` nested <div>s, with more text after them."""
    body = (
        "<p>Before the nesting.</p>"
        + "<div>" * depth
        + "<p>Deep inside.</p>"
        + "</div>" * depth
        + "<p>After the nesting.</p>"
    )
    return package(
        folder / "deep.epub", {"c1.xhtml": _plain_chapter(1), "c2.xhtml": xhtml(body)}
    )


def many_toc_entries(folder: Path, entries: int = 5000, anchors: bool = False) -> Path:
    """A TOC of ``entries`` links all into one file; with ``anchors`` each has a real id."""
    if anchors:
        body = "".join(f'<p id="s{n}">Section {n} starts here.</p>' for n in range(entries))
    else:
        body = "<h1>The only chapter</h1>" + CHAPTER_TEXT * 3
    links = [(f"c1.xhtml#s{n}", f"Section {n}") for n in range(entries)]
    return package(folder / "toc.epub", {"c1.xhtml": xhtml(body)}, toc=links)


def many_chapters(folder: Path, chapters: int = 5000) -> Path:
    """``chapters`` small spine documents (each a chapter in the TOC)."""
    docs: dict[str, Entry | str] = {f"c{n}.xhtml": _plain_chapter(n) for n in range(chapters)}
    return package(folder / "chapters.epub", docs)


def dtd_subset(folder: Path) -> Path:
    """A chapter that declares its own entity in an internal DTD subset, and uses it."""
    doctype = '<!DOCTYPE html [\n  <!ENTITY harbour "the old harbour">\n]>\n'
    body = "<h1>Chapter 2</h1><p>They sailed into &harbour; at dawn.</p>"
    return package(
        folder / "dtd.epub",
        {"c1.xhtml": _plain_chapter(1), "c2.xhtml": xhtml(body, "Chapter 2", doctype)},
    )
