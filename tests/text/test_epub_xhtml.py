"""One EPUB content document to spoken blocks: what is read, what is not, where breaks fall."""

from __future__ import annotations

from voicekit.text.matter import classify
from voicekit.text.model import (
    CODE,
    CODE_CLOSE,
    CODE_OPEN,
    HEADING,
    LIST,
    TABLE,
    TABLE_HEADER,
)
from voicekit.text.xhtml import parse_document, strip_markup


def _texts(body: str, head: str = "") -> list[str]:
    html = f"<html><head>{head}</head><body>{body}</body></html>"
    return [b.text for b in parse_document(html.encode()).blocks]


def test_paragraphs_lists_and_verse_lines() -> None:
    body = (
        "<p>One  two\n three.</p><ul><li>first</li><li>second</li></ul>"
        "<p>Roses are red,<br/>violets are blue.</p>"
    )
    assert _texts(body) == [
        "One two three.",
        LIST + "first",  # an item each; the plan reads a list as one paragraph
        LIST + "second",
        "Roses are red,",
        "violets are blue.",
    ]


def test_heading_with_line_break_stays_one_heading() -> None:
    doc = parse_document(b"<html><body><h2>Chapter I<br/>The Storm</h2><p>x</p></body></html>")
    assert [(b.text, b.heading) for b in doc.blocks] == [("Chapter I The Storm", 2), ("x", 0)]


def test_footnote_markers_notes_and_page_numbers_are_dropped() -> None:
    body = (
        '<p>Text<a epub:type="noteref" href="#n1">1</a> and more<sup><a href="#n2">[2]</a></sup>.'
        '<span role="doc-pagebreak" aria-label="12">12</span></p>'
        '<aside epub:type="footnote" id="n1"><p>Note one.</p></aside>'
        '<aside role="doc-endnote"><p>Note two.</p></aside>'
        '<div epub:type="pagebreak" title="13"></div>'
    )
    assert _texts(body) == ["Text and more."]


def test_superscripts_that_are_not_notes_are_read() -> None:
    assert _texts("<p>The 1<sup>st</sup> of May, E = mc<sup>2</sup>.</p>") == [
        "The 1st of May, E = mc2."
    ]


def test_images_scripts_hidden_and_ruby_are_silent() -> None:
    body = (
        '<p>Look<img src="a.png" alt="ALT TEXT"/> here.</p><script>var x = 1;</script>'
        '<p hidden="">Hidden.</p><p style="display: none">Gone.</p>'
        "<p><ruby>漢<rt>kan</rt></ruby>字</p><svg><title>Figure</title><text>svg</text></svg>"
    )
    assert _texts(body, head="<title>Doc title</title><style>p {}</style>") == [
        "Look here.",
        "漢字",
    ]


def test_table_rows_keep_their_cells_and_header() -> None:
    body = "<table><tr><th>Name</th><th>Age</th></tr><tr><td>Ann</td><td></td></tr></table>"
    assert _texts(body) == [TABLE + TABLE_HEADER + "Name\tAge", TABLE + "Ann\t"]
    body = "<table><thead><tr><td>A</td></tr></thead><tr><td>1</td></tr></table>"
    assert _texts(body) == [TABLE + TABLE_HEADER + "A", TABLE + "1"]


def test_code_blocks_keep_their_lines_and_inline_code_is_marked() -> None:
    body = (
        "<p>Run <code>lb config</code> now.</p>"
        "<pre>\n$ mkdir live &amp;&amp; cd live\n  lb build\n</pre>"
        "<div><code>one\ntwo</code></div>"
    )
    assert _texts(body) == [
        f"Run {CODE_OPEN}lb config{CODE_CLOSE} now.",
        CODE + "$ mkdir live && cd live\n  lb build",
        CODE + "one\ntwo",
    ]


def test_unlinked_superscript_note_markers_are_dropped() -> None:
    body = "<p>It rained.<sup>3</sup> The sea rose<sup>12</sup> and 10<sup>6</sup> fish swam.</p>"
    assert _texts(body) == ["It rained. The sea rose and 106 fish swam."]


def test_section_headings_carry_their_mark() -> None:
    doc = parse_document(b"<html><body><h2>6.1 Changes</h2><p>Text.</p></body></html>")
    assert [b.paragraph for b in doc.blocks] == [HEADING + "6.1 Changes", "Text."]
    assert doc.blocks[0].text == "6.1 Changes"  # titles never carry marks


def test_anchors_and_regions() -> None:
    raw = (
        b'<html><body><a id="top"/><h1 id="c1">One</h1><p>a <span id="mid">b</span></p>'
        b'<section id="pg-footer"><p>licence</p></section>'
        b'<nav epub:type="toc"><p>Contents</p></nav></body></html>'
    )
    doc = parse_document(raw)
    assert doc.anchors == {"top": 0, "c1": 0, "mid": 1, "pg-footer": 2}
    assert [b.region for b in doc.blocks] == ["", "", "license", "toc"]


def test_encoding_from_declaration_and_entities() -> None:
    raw = (
        '<?xml version="1.0" encoding="iso-8859-1"?><html><body><p>Caf\xe9&nbsp;au&#160;lait'
        "&hellip;</p></body></html>"
    ).encode("latin-1")
    assert _texts_raw(raw) == ["Café au lait…"]


def _texts_raw(raw: bytes) -> list[str]:
    return [b.text for b in parse_document(raw).blocks]


def test_empty_and_bodiless_documents() -> None:
    assert parse_document(b"").blocks == []
    assert parse_document(b"   ").blocks == []


def test_strip_markup() -> None:
    assert strip_markup("<p>A <i>fine</i>\nbook.</p>") == "A fine book."
    assert strip_markup("plain   words") == "plain words"


def test_classify_by_title_text_and_position() -> None:
    assert classify("Table of Contents", ["x"]) == "toc"
    assert classify("Copyright Page", ["x"]) == "copyright"
    assert classify("", ["© 2020 Someone.", "All rights reserved."]) == "copyright"
    assert classify("", ["Some Book", "Ann Author"], front=True, book_title="Some Book") == "title"
    assert classify("", ["Some Book", "Ann Author"], front=False, book_title="Some Book") == "body"
    assert classify("Some Book", ["by Ann"], book_title="Some book") == "title"
    assert classify("Index", ["apple, 3"]) == "index"
    assert classify("Chapter 1", ["It was a dark night."]) == "body"
    assert classify("Contents?", ["A", "B", "C"], toc_titles={"a", "b", "c"}) == "toc"
