"""Small EPUB 2 and EPUB 3 books for tests, written with ebooklib (and zipfile for broken ones)."""

from __future__ import annotations

import io
import re
import struct
import zipfile
import zlib
from pathlib import Path

from ebooklib import epub


def tiny_png(width: int = 4, height: int = 4) -> bytes:
    """A valid grey PNG, made here so no image file is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def tiny_jpeg(width: int = 2, height: int = 3) -> bytes:
    """A JPEG's markers (SOI, JFIF, frame header, scan, EOI) around a few bytes of scan:
    what a header check reads, not a picture a decoder would show."""
    jfif = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    frame = struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00"
    scan = b"\x01\x01\x00\x00\x3f\x00"
    return (
        b"\xff\xd8"
        + b"\xff\xe0" + struct.pack(">H", len(jfif) + 2) + jfif
        + b"\xff\xc0" + struct.pack(">H", len(frame) + 2) + frame
        + b"\xff\xda" + struct.pack(">H", len(scan) + 2) + scan
        + b"\x12\x34\x56"
        + b"\xff\xd9"
    )  # fmt: skip


def page(title: str, body: str, *, file_name: str, uid: str) -> epub.EpubHtml:
    item = epub.EpubHtml(title=title, file_name=file_name, uid=uid, lang="en")
    item.content = f"<html><head><title>{title}</title></head><body>{body}</body></html>"
    return item


CHAPTERS = [
    (
        "Chapter 1: The Storm",
        "<h1>Chapter 1: The Storm</h1>"
        "<p>The wind rose over the harbour.<sup><a epub:type='noteref' href='#n1'>1</a></sup></p>"
        "<span epub:type='pagebreak' id='page7' title='7'>7</span>"
        "<p>Boats pulled at their ropes. <img src='boat.png' alt='A boat in a storm'/></p>"
        "<aside epub:type='footnote' id='n1'><p>A footnote nobody reads aloud.</p></aside>",
    ),
    (
        "Chapter 2: The Calm",
        "<h1>Chapter 2: The Calm</h1><p>Morning came quietly.</p><p>The sea was flat.</p>",
    ),
    (
        "Chapter 3: Home",
        "<h1>Chapter 3: Home</h1><p>They walked back up the hill.</p>",
    ),
]


def build_epub(
    path: Path,
    *,
    version: int = 3,
    title: str = "The Harbour",
    authors: tuple[str, ...] = ("Ada Writer",),
    cover: bytes | None = None,
    chapters: list[tuple[str, str]] | None = None,
    front_matter: bool = True,
    license_page: bool = True,
) -> Path:
    """A book: [cover page], title page, contents, copyright, chapters, [licence].

    ``version=2`` gives an EPUB 2 book: NCX only, ``version="2.0"`` in the OPF.
    """
    book = epub.EpubBook()
    book.set_identifier("test-" + re.sub(r"\W", "", title).lower())
    book.set_title(title)
    book.set_language("en")
    for n, author in enumerate(authors):
        book.add_author(author, uid=f"creator{n}")
    book.add_metadata("DC", "publisher", "Test Press")
    book.add_metadata("DC", "date", "2001-02-03")
    book.add_metadata("DC", "description", "<p>A <b>short</b> book about a harbour.</p>")
    if cover is not None:
        book.set_cover("cover.png", cover)
    spine: list[object] = ["cover"] if cover is not None else []
    toc: list[object] = []
    if front_matter:
        title_page = page(
            "Title",
            f"<section epub:type='titlepage'><h1>{title}</h1><p>{' and '.join(authors)}</p>"
            "</section>",
            file_name="title.xhtml",
            uid="titlepage",
        )
        contents = page(
            "Contents",
            "<h2>Contents</h2>" + "".join(f"<p>{name}</p>" for name, _ in chapters or CHAPTERS),
            file_name="contents.xhtml",
            uid="contents",
        )
        copyright_page = page(
            "Copyright",
            "<p>Copyright © 2001 Ada Writer. All rights reserved.</p><p>ISBN 978-0-00-000000-2</p>",
            file_name="copyright.xhtml",
            uid="copyright",
        )
        for item in (title_page, contents, copyright_page):
            book.add_item(item)
            spine.append(item)
    for n, (name, body) in enumerate(chapters or CHAPTERS, 1):
        item = page(name, body, file_name=f"chapter{n}.xhtml", uid=f"chapter{n}")
        book.add_item(item)
        spine.append(item)
        toc.append(epub.Link(f"chapter{n}.xhtml", name, f"chapter{n}"))
    if license_page:
        item = page(
            "License",
            "<section id='pg-footer' class='pg-boilerplate'>"
            "<p>*** END OF THE PROJECT GUTENBERG EBOOK THE HARBOUR ***</p>"
            "<h2>THE FULL PROJECT GUTENBERG LICENSE</h2>"
            "<p>To protect the Project Gutenberg-tm mission of promoting the free "
            "distribution of electronic works, you agree to comply with all the terms.</p>"
            "</section>",
            file_name="license.xhtml",
            uid="license",
        )
        book.add_item(item)
        spine.append(item)
    book.toc = toc
    book.add_item(epub.EpubNcx())
    if version == 3:
        book.add_item(epub.EpubNav())
    book.spine = spine
    epub.write_epub(str(path), book, {"epub3_pages": False})
    if version == 2:
        _rewrite(path, lambda name, data: _as_epub2(data) if name.endswith(".opf") else data)
    return path


def _as_epub2(opf: bytes) -> bytes:
    return opf.replace(b'version="3.0"', b'version="2.0"')


def _rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    with zipfile.ZipFile(path) as zf:
        items = [(info, zf.read(info.filename)) for info in zf.infolist()]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in items:
            zf.writestr(info, change(info.filename, data))


def add_files(path: Path, files: dict[str, bytes]) -> None:
    """Add (or replace) members of an existing EPUB."""
    with zipfile.ZipFile(path) as zf:
        items = [(i, zf.read(i.filename)) for i in zf.infolist() if i.filename not in files]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in items:
            zf.writestr(info, data)
        for name, data in files.items():
            zf.writestr(name, data)


def remove_files(path: Path, names: set[str]) -> None:
    with zipfile.ZipFile(path) as zf:
        items = [(i, zf.read(i.filename)) for i in zf.infolist() if i.filename not in names]
    with zipfile.ZipFile(path, "w") as zf:
        for info, data in items:
            zf.writestr(info, data)


def raw_epub(path: Path, files: dict[str, str | bytes]) -> Path:
    """An EPUB from literal members (mimetype first, stored), for hand-written packages."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        zf.writestr(
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" '
            'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
            '<rootfile full-path="OEBPS/content.opf" '
            'media-type="application/oebps-package+xml"/></rootfiles></container>',
        )
        for name, data in files.items():
            zf.writestr(name, data)
    path.write_bytes(buf.getvalue())
    return path
