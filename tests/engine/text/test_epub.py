"""EPUB 2 and 3 books to chapters: reading order, titles, matter, metadata, cover."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.text.epub_factory import CHAPTERS, build_epub, raw_epub, tiny_jpeg, tiny_png
from voicekit.engine.plan import select_chapters
from voicekit.engine.text.epub import load_epub
from voicekit.engine.text.epub_package import split_href
from voicekit.engine.text.sources import load_source

BODY_TITLES = ["Chapter 1: The Storm", "Chapter 2: The Calm", "Chapter 3: Home"]


@pytest.mark.parametrize("version", [2, 3])
def test_chapters_titles_and_matter(tmp_path: Path, version: int) -> None:
    book = load_epub(build_epub(tmp_path / "b.epub", version=version, cover=tiny_png()))
    got = [(c.index, c.title, c.kind, c.included) for c in book.chapters]
    assert got == [
        (1, "Cover", "cover", False),
        (2, "The Harbour", "title", False),
        (3, "Contents", "toc", False),
        (4, "Copyright", "copyright", False),
        (5, "Chapter 1: The Storm", "body", True),
        (6, "Chapter 2: The Calm", "body", True),
        (7, "Chapter 3: Home", "body", True),
        (8, "THE FULL PROJECT GUTENBERG LICENSE", "license", False),
    ]


def test_epub2_really_is_epub2_with_ncx_only(tmp_path: Path) -> None:
    import zipfile

    path = build_epub(tmp_path / "b.epub", version=2)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        opf = zf.read("EPUB/content.opf")
    assert b'version="2.0"' in opf
    assert "EPUB/toc.ncx" in names and "EPUB/nav.xhtml" not in names
    assert [c.title for c in load_epub(path).chapters if c.included] == BODY_TITLES


def test_paragraphs_skip_notes_page_numbers_and_alt_text(tmp_path: Path) -> None:
    book = load_epub(build_epub(tmp_path / "b.epub"))
    first = next(c for c in book.chapters if c.title.startswith("Chapter 1"))
    # the heading is the title (read once), paragraphs stay apart (they become pauses)
    assert first.paragraphs == ["The wind rose over the harbour.", "Boats pulled at their ropes."]
    text = " ".join(p for c in book.chapters for p in c.paragraphs)
    assert "footnote" not in text and "A boat in a storm" not in text
    assert "harbour.1" not in text and " 7 " not in f" {text} "


def test_metadata(tmp_path: Path) -> None:
    meta = load_epub(build_epub(tmp_path / "b.epub", authors=("Ada Writer", "Bo Pen"))).meta
    assert meta.title == "The Harbour"
    assert meta.authors == ["Ada Writer", "Bo Pen"]
    assert (meta.language, meta.publisher, meta.date) == ("en", "Test Press", "2001-02-03")
    assert meta.description == "A short book about a harbour."  # HTML stripped
    assert meta.cover is None and meta.cover_mime == ""


def test_cover_bytes_and_mime(tmp_path: Path) -> None:
    png = tiny_png()
    meta = load_epub(build_epub(tmp_path / "b.epub", cover=png)).meta
    assert meta.cover == png and meta.cover_mime == "image/png"


def test_sources_dispatches_epub_and_selection_brings_matter_back(tmp_path: Path) -> None:
    path = build_epub(tmp_path / "b.epub")
    book = load_source(path)
    assert book.source == path and book.words == 24
    select_chapters(book, None, all_chapters=True)
    assert all(c.included for c in book.chapters)
    book = load_source(path)
    select_chapters(book, "2,5", all_chapters=False)
    assert [c.index for c in book.chapters if c.included] == [2, 5]


# --------------------------------------------------------------------------- hand-made packages
def _opf(
    manifest: str,
    spine: str,
    *,
    version: str = "3.0",
    meta: str = "",
    guide: str = "",
    toc_attr: str = "",
) -> str:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><package xmlns="http://www.idpf.org/2007/opf" '
        f'version="{version}" unique-identifier="id"><metadata '
        'xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">'
        '<dc:identifier id="id">x</dc:identifier><dc:title>Hand Made</dc:title>'
        f"<dc:language>en</dc:language>{meta}</metadata><manifest>{manifest}</manifest>"
        f"<spine{toc_attr}>{spine}</spine>{guide}</package>"
    )


def _xhtml(body: str, title: str = "x") -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml" '
        f'xmlns:epub="http://www.idpf.org/2007/ops"><head><title>{title}</title></head>'
        f"<body>{body}</body></html>"
    )


def _item(ident: str, href: str, props: str = "") -> str:
    extra = f' properties="{props}"' if props else ""
    return f'<item id="{ident}" href="{href}" media-type="application/xhtml+xml"{extra}/>'


def test_toc_fragments_split_one_file_into_chapters(tmp_path: Path) -> None:
    """Gutenberg-style: one big file, the nav points at anchors inside it."""
    nav = _xhtml(
        '<nav epub:type="toc"><ol><li><a href="text.xhtml#c1">I. Arrival</a></li>'
        '<li><a href="text.xhtml#c2">II. Departure</a></li></ol></nav>'
    )
    text = _xhtml(
        '<section id="pg-header" class="pg-boilerplate"><p>The Project Gutenberg eBook of '
        "Hand Made</p><p>This ebook is for the use of anyone anywhere in the United States.</p>"
        "<p>*** START OF THE PROJECT GUTENBERG EBOOK HAND MADE ***</p></section>"
        '<h2><a id="c1"></a>I. Arrival</h2><p>We came by night.</p>'
        '<p>Nobody saw us<a class="fnanchor" href="#fn1">[1]</a>.</p>'
        '<h2 id="c2">II. Departure</h2><p>We left at dawn.</p>'
        '<p><span class="pagenum"><a id="Page_9">[9]</a></span>The end.</p>'
        '<section id="pg-footer" class="pg-boilerplate">'
        "<p>*** END OF THE PROJECT GUTENBERG EBOOK HAND MADE ***</p>"
        "<p>Updated editions will replace the previous one.</p></section>"
    )
    path = raw_epub(tmp_path / "pg.epub", {
        "OEBPS/content.opf": _opf(_item("nav", "nav.xhtml", "nav") + _item("t", "text.xhtml"),
                                  '<itemref idref="t"/>'),
        "OEBPS/nav.xhtml": nav,
        "OEBPS/text.xhtml": text,
    })  # fmt: skip
    chapters = load_epub(path).chapters
    assert [(c.title, c.kind, c.included) for c in chapters] == [
        ("License", "license", False),
        ("I. Arrival", "body", True),
        ("II. Departure", "body", True),
        ("License", "license", False),
    ]
    assert chapters[1].paragraphs == ["We came by night.", "Nobody saw us."]
    assert chapters[2].paragraphs == ["We left at dawn.", "The end."]


def test_old_gutenberg_markers_in_plain_text(tmp_path: Path) -> None:
    """No ids or classes: the *** START/END *** lines alone separate the boilerplate."""
    body = (
        "<p>The Project Gutenberg EBook of Hand Made, by Someone</p>"
        "<p>*** START OF THIS PROJECT GUTENBERG EBOOK HAND MADE ***</p>"
        "<h1>CHAPTER I.</h1><p>It began in spring.</p><h1>CHAPTER II.</h1><p>It ended.</p>"
        "<p>*** END OF THIS PROJECT GUTENBERG EBOOK HAND MADE ***</p><p>Licence text.</p>"
    )
    path = raw_epub(tmp_path / "old.epub", {
        "OEBPS/content.opf": _opf(_item("t", "t.html"), '<itemref idref="t"/>'),
        "OEBPS/t.html": _xhtml(body),
    })  # fmt: skip
    chapters = load_epub(path).chapters
    assert [(c.title, c.included) for c in chapters] == [
        ("License", False),
        ("CHAPTER I.", True),
        ("CHAPTER II.", True),
        ("License", False),
    ]


def test_gutenberg_licence_without_markers_is_skipped(tmp_path: Path) -> None:
    """No *** markers, ids or telling title: the licence is known by how its text opens."""
    small_print = (
        "Small Print",
        "<h1>Small Print</h1><p>This eBook is for the use of anyone anywhere at no cost and "
        "with almost no restrictions whatsoever.</p><p>You may copy it or give it away.</p>",
    )
    book = load_epub(build_epub(tmp_path / "b.epub", chapters=[*CHAPTERS, small_print],
                                front_matter=False, license_page=False))
    assert [(c.title, c.kind, c.included) for c in book.chapters][-2:] == [
        ("Chapter 3: Home", "body", True),
        ("Small Print", "license", False),
    ]


@pytest.mark.parametrize(("href", "base", "expected"), [
    ("../Text/c%201.xhtml#n%202", "nav", ("Text/c 1.xhtml", "n 2")),
    ("./cover.xhtml", "", ("cover.xhtml", "")),
    ("#only-fragment", "Text", ("", "only-fragment")),
    ("a%23b.xhtml#c", "", ("a#b.xhtml", "c")),  # an escaped '#' is part of the name
])
def test_split_href(href: str, base: str, expected: tuple[str, str]) -> None:
    assert split_href(href, base) == expected


def test_no_toc_headings_then_file_order(tmp_path: Path) -> None:
    files = {
        "OEBPS/a.xhtml": _xhtml("<h1>Opening</h1><p>First words.</p>"),
        "OEBPS/b.xhtml": _xhtml("<p>No heading here at all.</p>"),
        "OEBPS/c.xhtml": _xhtml("<h2>Two</h2><p>x.</p><h2>Three</h2><p>y.</p>"),
    }
    manifest = "".join(_item(n, f"{n}.xhtml") for n in "abc")
    spine = "".join(f'<itemref idref="{n}"/>' for n in "abc")
    path = raw_epub(tmp_path / "n.epub", {"OEBPS/content.opf": _opf(manifest, spine), **files})
    chapters = load_epub(path).chapters
    assert [(c.index, c.title, c.paragraphs) for c in chapters] == [
        (1, "Opening", ["First words."]),
        (2, "", ["No heading here at all."]),  # untitled: the audio says "Chapter 2"
        (3, "Two", ["x."]),
        (4, "Three", ["y."]),
    ]


def test_file_not_in_toc_continues_the_chapter(tmp_path: Path) -> None:
    """Converters split long chapters over files; only the TOC says where chapters start."""
    ncx = (
        '<?xml version="1.0"?><ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">'
        "<head/><docTitle><text>x</text></docTitle><navMap>"
        '<navPoint id="n1"><navLabel><text>One</text></navLabel><content src="text/a.html"/>'
        "</navPoint>"
        '<navPoint id="n2"><navLabel><text>Two</text></navLabel><content src="text/c.html"/>'
        "</navPoint></navMap></ncx>"
    )
    manifest = '<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>' + "".join(
        _item(n, f"text/{n}.html") for n in "abc"
    )
    spine = "".join(f'<itemref idref="{n}"/>' for n in "abc")
    # EPUB 2 style: DOCTYPE and HTML entities that XML alone would not know
    doc2 = (
        '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
        '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd"><html xmlns="http://www.w3.org/1999/xhtml">'
        "<head><title>b</title></head><body><p>More&nbsp;of one &mdash; still.</p></body></html>"
    )
    path = raw_epub(tmp_path / "c.epub", {
        "OEBPS/content.opf": _opf(manifest, spine, version="2.0", toc_attr=' toc="ncx"'),
        "OEBPS/toc.ncx": ncx,
        "OEBPS/text/a.html": _xhtml("<p>Part of one.</p>"),
        "OEBPS/text/b.html": doc2,
        "OEBPS/text/c.html": _xhtml("<p>All of two.</p>"),
    })  # fmt: skip
    chapters = load_epub(path).chapters
    assert [(c.title, c.paragraphs) for c in chapters] == [
        ("One", ["Part of one.", "More of one — still."]),
        ("Two", ["All of two."]),
    ]


def test_guide_landmarks_and_roles_classify_matter(tmp_path: Path) -> None:
    nav = _xhtml(
        '<nav epub:type="toc"><ol><li><a href="s.xhtml">Story</a></li></ol></nav>'
        '<nav epub:type="landmarks"><ol><li><a epub:type="copyright-page" href="legal.xhtml">'
        "Legal</a></li></ol></nav>"
    )
    manifest = (
        _item("nav", "nav.xhtml", "nav")
        + _item("legal", "legal.xhtml")
        + _item("idx", "idx.xhtml")
        + _item("s", "s.xhtml")
    )
    spine = '<itemref idref="legal"/><itemref idref="s"/><itemref idref="idx"/>'
    path = raw_epub(tmp_path / "g.epub", {
        "OEBPS/content.opf": _opf(manifest, spine),
        "OEBPS/nav.xhtml": nav,
        "OEBPS/legal.xhtml": _xhtml("<p>Printed somewhere, some year.</p>"),
        "OEBPS/s.xhtml": _xhtml("<p>Once upon a time.</p>"),
        "OEBPS/idx.xhtml": _xhtml('<section role="doc-index"><p>apple, 3</p></section>'),
    })  # fmt: skip
    chapters = load_epub(path).chapters
    assert [(c.title, c.kind, c.included) for c in chapters] == [
        ("Copyright", "copyright", False),
        ("Story", "body", True),
        ("Index", "index", False),
    ]


def test_author_roles_and_epub2_cover_meta(tmp_path: Path) -> None:
    meta = (
        '<dc:creator opf:role="aut">Real Author</dc:creator>'
        '<dc:creator opf:role="edt">An Editor</dc:creator>'
        '<dc:creator id="c3">Second Author</dc:creator>'
        '<meta refines="#c3" property="role" scheme="marc:relators">aut</meta>'
        '<dc:creator id="c4">An Illustrator</dc:creator>'
        '<meta refines="#c4" property="role" scheme="marc:relators">ill</meta>'
        '<meta name="cover" content="cimg"/>'
        '<dc:date opf:event="modification">2020-01-01</dc:date>'
        '<dc:date opf:event="publication">1999</dc:date>'
    )
    manifest = _item("s", "s.xhtml") + '<item id="cimg" href="c.jpg" media-type="image/jpeg"/>'
    jpeg = tiny_jpeg()
    path = raw_epub(tmp_path / "m.epub", {
        "OEBPS/content.opf": _opf(manifest, '<itemref idref="s"/>', meta=meta),
        "OEBPS/s.xhtml": _xhtml("<p>Text.</p>"),
        "OEBPS/c.jpg": jpeg,
    })  # fmt: skip
    loaded = load_epub(path).meta
    assert loaded.authors == ["Real Author", "Second Author"]
    assert loaded.date == "1999"
    assert loaded.cover == jpeg and loaded.cover_mime == "image/jpeg"


def test_every_chapter_from_the_factory_has_text_where_expected(tmp_path: Path) -> None:
    book = load_epub(build_epub(tmp_path / "b.epub", front_matter=False, license_page=False))
    assert [c.title for c in book.chapters] == [name for name, _ in CHAPTERS]
    assert all(c.included and c.paragraphs for c in book.chapters)


def test_heading_only_pages_before_the_text_are_skipped(tmp_path: Path) -> None:
    """Gutenberg lists title-page lines in its TOC; a part divider is the book's own."""
    chapters = [
        ("THE MILLENNIUM FULCRUM EDITION 3.0", "<h3>THE MILLENNIUM FULCRUM EDITION 3.0</h3>"),
        ("Part One", "<h2>Part One</h2>"),
        *CHAPTERS[:2],
        ("Part Two", "<h2>Part Two</h2>"),
        ("Interlude", "<h2>Interlude</h2>"),  # after the text started: kept
        CHAPTERS[2],
    ]
    book = load_epub(build_epub(tmp_path / "b.epub", chapters=chapters, front_matter=False,
                                license_page=False))
    assert [(c.title, c.kind, c.included) for c in book.chapters] == [
        ("THE MILLENNIUM FULCRUM EDITION 3.0", "title", False),
        ("Part One", "body", True),
        ("Chapter 1: The Storm", "body", True),
        ("Chapter 2: The Calm", "body", True),
        ("Part Two", "body", True),
        ("Interlude", "body", True),
        ("Chapter 3: Home", "body", True),
    ]
