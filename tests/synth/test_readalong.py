"""The read-along EPUB: valid EPUB 3 (epubcheck), clips inside the audio and in order."""

from __future__ import annotations

import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest

from voicekit.settings import SynthSettings
from voicekit.synth.pipeline import RunOptions, Synthesizer
from voicekit.text.model import Book, BookMeta, Chapter

pytestmark = pytest.mark.slow

EPUBCHECK = Path("/usr/bin/epubcheck")
BOOK = Book(
    BookMeta(title="Harbour & Light", authors=["A. Writer"], language="en"),
    [
        Chapter(1, "Chapter I", ["Mr. Ellis climbed the hill. He was 52 <then>.", "It rained."]),
        Chapter(2, "Chapter II", ["Mrs. Penhallow sold him bread."]),
    ],
)
SMIL = "{http://www.w3.org/ns/SMIL}"


def _seconds(clock: str) -> float:
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _epubcheck(path: Path) -> subprocess.CompletedProcess[str]:
    # Debian's epubcheck is the jar itself (run through binfmt), so ask java for it
    java = shutil.which("java")
    if java and EPUBCHECK.resolve().suffix == ".jar":
        cmd = [java, "-jar", str(EPUBCHECK), str(path)]
    else:
        cmd = [str(EPUBCHECK), str(path)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    tmp = tmp_path_factory.mktemp("readalong")
    settings = SynthSettings(device="cpu", backend="ort", sentence_silence=0.1,
                             paragraph_silence=0.2, chapter_silence=0.3)
    epub = tmp / "read.epub"
    with pytest.MonkeyPatch.context() as mp:  # one run for the module, away from the user's home
        mp.setenv("VOICEKIT_HOME", str(tmp / "home"))
        synth = Synthesizer(settings)
        plan = synth.plan(BOOK)
        list(synth.run(plan, tmp / "book.wav", RunOptions(readalong=epub)))
    return epub, tmp / "book.wav", plan


def _assert_valid(epub: Path) -> None:
    if not EPUBCHECK.exists():
        pytest.skip("epubcheck is not installed (Debian package epubcheck)")
    result = _epubcheck(epub)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 errors / 0 warnings" in result.stdout + result.stderr


def test_passes_epubcheck(made: tuple[Path, Path, object]) -> None:
    _assert_valid(made[0])


def test_clips_lie_inside_the_audio_in_order(made: tuple[Path, Path, object]) -> None:
    epub, wav, plan = made
    with zipfile.ZipFile(epub) as z:
        names = z.namelist()
        assert names[0] == "mimetype" and z.getinfo("mimetype").compress_type == zipfile.ZIP_STORED
        audio = z.read("OEBPS/audio/book.mp3")
        smils = sorted(n for n in names if n.endswith(".smil"))
        assert len(smils) == 2
        opf = z.read("OEBPS/package.opf").decode()
        probe = Path(str(wav) + ".mp3")
        probe.write_bytes(audio)
        seconds = float(
            subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                 str(probe)], capture_output=True, text=True, check=True,
            ).stdout
        )
        previous = 0.0
        texts = []
        durations = []
        for name in smils:
            root = ElementTree.fromstring(z.read(name))
            total = 0.0
            xhtml_name = ""
            for par in root.iter(f"{SMIL}par"):
                src = par.find(f"{SMIL}text").get("src")  # type: ignore[union-attr]
                clip = par.find(f"{SMIL}audio")
                assert clip is not None
                begin, end = _seconds(clip.get("clipBegin", "")), _seconds(clip.get("clipEnd", ""))
                assert previous <= begin < end <= seconds + 0.001
                previous = end
                total += end - begin
                xhtml_name, _, sid = src.partition("#")
                page = z.read(f"OEBPS/{xhtml_name}").decode()
                span = re.search(rf'<span id="{sid}">(.*?)</span>', page)
                assert span is not None
                texts.append(span.group(1))
            durations.append(total)
    # the book's own text (escaped as XHTML), one span per sentence
    sources = [s for b in plan.buckets for s in b.sources if s]  # type: ignore[attr-defined]
    assert texts == [s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                     for s in sources]
    assert "He was 52 &lt;then&gt;." in texts
    # media:duration: one per overlay and the book's, which is their sum
    found = re.findall(r'<meta property="media:duration"(?: refines="#([^"]+)")?>([^<]+)<', opf)
    per = [_seconds(v) for ref, v in found if ref]
    assert per == pytest.approx(durations, abs=0.002)
    assert [_seconds(v) for ref, v in found if not ref] == pytest.approx([sum(per)], abs=1e-6)


# --------------------------------------------------------------------------- EPUB input
XHTML = "{http://www.w3.org/1999/xhtml}"
_PAGE = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops" lang="en"
 xml:lang="en"><head><title>{title}</title>
<link rel="stylesheet" type="text/css" href="css/book.css"/></head>
<body>{body}</body></html>"""
_OPF = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
<dc:identifier id="uid">urn:uuid:12345678-1234-4234-8234-123456789abc</dc:identifier>
<dc:title>The Harbour</dc:title><dc:language>en</dc:language><dc:creator>Ada Writer</dc:creator>
<meta property="dcterms:modified">2020-01-01T00:00:00Z</meta></metadata>
<manifest>
<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
<item id="title" href="title.xhtml" media-type="application/xhtml+xml"/>
<item id="c1" href="chapter1.xhtml" media-type="application/xhtml+xml"/>
<item id="c2" href="chapter2.xhtml" media-type="application/xhtml+xml"/>
<item id="css" href="css/book.css" media-type="text/css"/>
<item id="boat" href="images/boat.png" media-type="image/png"/>
</manifest>
<spine><itemref idref="title"/><itemref idref="nav"/><itemref idref="c1"/>
<itemref idref="c2"/></spine>
</package>"""
_NAV = _PAGE.format(
    title="Contents",
    body="<nav epub:type='toc' id='toc'><h1>Contents</h1><ol>"
    "<li><a href='chapter1.xhtml'>Chapter 1: The Storm</a></li>"
    "<li><a href='chapter2.xhtml'>Chapter 2: The Calm</a></li></ol></nav>",
)
EPUB_CHAPTERS = {
    "title.xhtml": _PAGE.format(
        title="Title",
        body="<section epub:type='titlepage'><h1>The Harbour</h1><p>Ada Writer</p></section>",
    ),
    "chapter1.xhtml": _PAGE.format(
        title="Chapter 1",
        body="<section><h1 id='ch1'>Chapter 1: The Storm</h1>"
        "<p class='first'>The wind rose over the <em>grey</em> harbour."
        "<sup><a epub:type='noteref' href='#n1' id='r1'>1</a></sup> Boats pulled at their ropes."
        "</p><figure><img src='images/boat.png' alt='A boat in a storm'/></figure>"
        "<p><em>Nobody slept.</em> The lamps burned until <a href='#n1'>dawn came</a>.</p>"
        "<aside epub:type='footnote' id='n1'><p>A footnote nobody reads aloud.</p></aside>"
        "</section>",
    ),
    "chapter2.xhtml": _PAGE.format(
        title="Chapter 2",
        body="<h1>Chapter 2: The Calm</h1><p>Morning came quietly.</p><p>The sea was flat.</p>",
    ),
}


@pytest.fixture(scope="module")
def made_from_epub(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, object]:
    from tests.text.epub_factory import raw_epub, tiny_png
    from voicekit.text.sources import load_source

    tmp = tmp_path_factory.mktemp("readalong-epub")
    source = raw_epub(tmp / "harbour.epub", {
        "OEBPS/content.opf": _OPF,
        "OEBPS/nav.xhtml": _NAV,
        **{f"OEBPS/{name}": page for name, page in EPUB_CHAPTERS.items()},
        "OEBPS/css/book.css": "p.first { text-indent: 0; }\nem { font-style: italic; }\n",
        "OEBPS/images/boat.png": tiny_png(),
    })  # fmt: skip
    settings = SynthSettings(device="cpu", backend="ort", sentence_silence=0.1,
                             paragraph_silence=0.2, chapter_silence=0.3)
    epub = tmp / "read.epub"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEKIT_HOME", str(tmp / "home"))
        synth = Synthesizer(settings)
        plan = synth.plan(load_source(source))
        list(synth.run(plan, tmp / "book.wav", RunOptions(readalong=epub)))
    return epub, source, plan


def _spans(page: bytes) -> dict[str, str]:
    """Span id to its text (markup inside it dropped, whitespace collapsed)."""
    root = ElementTree.fromstring(page)
    return {
        el.get("id", ""): " ".join("".join(el.itertext()).split())
        for el in root.iter(f"{XHTML}span") if el.get("id")
    }  # fmt: skip


def test_epub_readalong_passes_epubcheck(made_from_epub: tuple[Path, Path, object]) -> None:
    _assert_valid(made_from_epub[0])


def test_epub_readalong_keeps_the_books_markup(made_from_epub: tuple[Path, Path, object]) -> None:
    epub, source, _ = made_from_epub
    with zipfile.ZipFile(epub) as z, zipfile.ZipFile(source) as original:
        # styles, images and the front matter are the book's own, byte for byte
        for name in ("OEBPS/css/book.css", "OEBPS/images/boat.png", "OEBPS/title.xhtml",
                     "OEBPS/nav.xhtml"):
            assert z.read(name) == original.read(name)
        page = z.read("OEBPS/chapter1.xhtml")
        opf = z.read("OEBPS/content.opf").decode()
    root = ElementTree.fromstring(page)
    links = [el.get("href") for el in root.iter(f"{XHTML}link")]
    assert links == ["css/book.css"]
    assert [el.get("src") for el in root.iter(f"{XHTML}img")] == ["images/boat.png"]
    assert root.find(f".//{XHTML}h1").get("id") == "ch1"  # type: ignore[union-attr]
    spans = _spans(page)
    wind = next(k for k, v in spans.items() if v == "The wind rose over the grey harbour.")
    # the <em> stays, inside the sentence's one span
    span = next(el for el in root.iter(f"{XHTML}span") if el.get("id") == wind)
    assert [(el.tag, el.text) for el in span] == [(f"{XHTML}em", "grey")]
    # the note and its marker are not read: no span in them
    aside = next(el for el in root.iter(f"{XHTML}aside"))
    assert not list(aside.iter(f"{XHTML}span"))
    assert "nobody reads aloud" not in " ".join(spans.values())
    # front matter stays a plain document; each chapter document has its overlay
    assert re.search(r'<item id="title" [^>]*/>', opf) and "media-overlay" not in re.search(
        r'<item id="title" [^>]*/>', opf
    ).group(0)  # type: ignore[union-attr]
    assert opf.count("media-overlay=") == 2


def test_epub_readalong_clips_follow_the_sentences(
    made_from_epub: tuple[Path, Path, object],
) -> None:
    epub, _, plan = made_from_epub
    with zipfile.ZipFile(epub) as z:
        opf = z.read("OEBPS/content.opf").decode()
        probe = epub.with_suffix(".mp3")
        probe.write_bytes(z.read("OEBPS/audio/book.mp3"))
        seconds = float(
            subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0",
                 str(probe)], capture_output=True, text=True, check=True,
            ).stdout
        )
        texts = []
        durations = {}
        previous = 0.0
        for name in ("OEBPS/chapter1.smil", "OEBPS/chapter2.smil"):
            root = ElementTree.fromstring(z.read(name))
            total = 0.0
            for par in root.iter(f"{SMIL}par"):
                src = par.find(f"{SMIL}text").get("src")  # type: ignore[union-attr]
                clip = par.find(f"{SMIL}audio")
                assert clip is not None and clip.get("src") == "audio/book.mp3"
                begin, end = _seconds(clip.get("clipBegin", "")), _seconds(clip.get("clipEnd", ""))
                assert previous <= begin < end <= seconds + 0.001
                previous = end
                total += end - begin
                page, _, sid = src.partition("#")
                texts.append(_spans(z.read(f"OEBPS/{page}"))[sid])
            durations[name] = total
    # every sentence voicekit read is found in this book's markup, in order
    sources = [" ".join(s.split()) for b in plan.buckets for s in b.sources if s]  # type: ignore[attr-defined]
    assert texts == sources
    assert "Nobody slept." in texts and "The lamps burned until dawn came." in texts
    found = re.findall(r'<meta property="media:duration"(?: refines="#([^"]+)")?>([^<]+)<', opf)
    per = {ref: _seconds(v) for ref, v in found if ref}
    assert sorted(per.values()) == pytest.approx(sorted(durations.values()), abs=0.002)
    assert [_seconds(v) for ref, v in found if not ref] == pytest.approx([sum(per.values())])


# An EPUB 2 book: XHTML 1.1 pages with HTML entities, an NCX and no nav document.
_XHTML11 = (
    '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.1//EN" '
    '"http://www.w3.org/TR/xhtml11/DTD/xhtml11.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml">'
    '<head><title>{title}</title><link rel="stylesheet" type="text/css" href="book.css"/></head>'
    "<body>{body}</body></html>"
)
_OPF2 = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="2.0" unique-identifier="uid">
<metadata xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:opf="http://www.idpf.org/2007/opf">
<dc:identifier id="uid" opf:scheme="uuid">
urn:uuid:12345678-1234-4234-8234-123456789abd</dc:identifier>
<dc:title>Old Book</dc:title><dc:language>en</dc:language>
<dc:creator opf:role="aut" opf:file-as="Writer, Ada">Ada Writer</dc:creator></metadata>
<manifest>
<item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
<item id="c1" href="text/ch1.xhtml" media-type="application/xhtml+xml"/>
<item id="c2" href="text/ch2.xhtml" media-type="application/xhtml+xml"/>
<item id="css" href="text/book.css" media-type="text/css"/>
</manifest>
<spine toc="ncx"><itemref idref="c1"/><itemref idref="c2"/></spine>
</package>"""
_NCX = """<?xml version="1.0" encoding="UTF-8"?>
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1"><head>
<meta name="dtb:uid" content="urn:uuid:12345678-1234-4234-8234-123456789abd"/></head>
<docTitle><text>Old Book</text></docTitle><navMap>
<navPoint id="n1" playOrder="1"><navLabel><text>One</text></navLabel>
<content src="text/ch1.xhtml"/></navPoint>
<navPoint id="n2" playOrder="2"><navLabel><text>Two</text></navLabel>
<content src="text/ch2.xhtml#top"/></navPoint></navMap></ncx>"""


@pytest.fixture(scope="module")
def made_from_epub2(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    from tests.text.epub_factory import raw_epub
    from voicekit.text.sources import load_source

    tmp = tmp_path_factory.mktemp("readalong-epub2")
    source = raw_epub(tmp / "old.epub", {
        "OEBPS/content.opf": _OPF2,
        "OEBPS/toc.ncx": _NCX,
        "OEBPS/text/ch1.xhtml": _XHTML11.format(
            title="One", body="<h2>One</h2><p>It was&nbsp;late. <i>Go. Now</i> he said.</p>"
        ),
        "OEBPS/text/ch2.xhtml": _XHTML11.format(
            title="Two", body="<h2 id='top'>Two</h2><p>The end came <b>soon</b>.</p>"
        ),
        "OEBPS/text/book.css": "p { margin: 0; }\n",
    })  # fmt: skip
    settings = SynthSettings(device="cpu", backend="ort", sentence_silence=0.1,
                             paragraph_silence=0.2, chapter_silence=0.3)
    epub = tmp / "read.epub"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEKIT_HOME", str(tmp / "home"))
        synth = Synthesizer(settings)
        plan = synth.plan(load_source(source))
        list(synth.run(plan, tmp / "book.wav", RunOptions(readalong=epub)))
    return epub, plan


def test_epub2_readalong_is_epub3_with_a_nav(made_from_epub2: tuple[Path, object]) -> None:
    epub, _ = made_from_epub2
    if EPUBCHECK.exists():
        result = _epubcheck(epub)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "0 errors / 0 warnings" in result.stdout + result.stderr
    with zipfile.ZipFile(epub) as z:
        opf = z.read("OEBPS/content.opf").decode()
        nav = z.read("OEBPS/nav.xhtml").decode()
        page = z.read("OEBPS/text/ch1.xhtml")
    assert 'version="3.0"' in opf and 'properties="nav"' in opf and "opf:role" not in opf
    assert '<a href="text/ch2.xhtml#top">Two</a>' in nav
    assert page.decode().splitlines()[1] == "<!DOCTYPE html>"
    # "Go. Now" in <i>, "he said." after it: a span per piece, the overlay names the first
    spans = _spans(page)
    now = next(k for k, v in spans.items() if v == "Now")
    assert spans[f"{now}-2"] == "he said."
    assert spans[next(k for k, v in spans.items() if v.startswith("It was"))] == "It was late."
    with zipfile.ZipFile(epub) as z:
        smil = z.read("OEBPS/text/ch1.smil").decode()
    assert f"ch1.xhtml#{now}\"" in smil and f"#{now}-2" not in smil


def test_sentences_are_wrapped_where_they_stand(tmp_path: Path) -> None:
    """Lifting out of inline markup at its edges; a sentence not on the page gets no span."""
    from tests.text.epub_factory import raw_epub
    from voicekit.synth.captions import Sentence
    from voicekit.synth.readalong_source import SourceBook

    body = ("<p><em>Really</em>, he said. <a href='#x'>Go <b>now</b></a> and <i>run. Fast</i></p>"
            "<pre>x = 1</pre>")  # fmt: skip
    epub = raw_epub(tmp_path / "b.epub", {
        "OEBPS/content.opf": _OPF,
        "OEBPS/nav.xhtml": _NAV,
        **{f"OEBPS/{name}": page for name, page in EPUB_CHAPTERS.items()},
        "OEBPS/chapter2.xhtml": _PAGE.format(title="Two", body=body),
    })  # fmt: skip
    with zipfile.ZipFile(epub) as z:
        members = {n: z.read(n) for n in z.namelist()}
    texts = ["Really, he said.", "Go now and run.", "Fast", "Code example omitted."]
    book = Book(BookMeta(title="T"), [Chapter(1, "", [" ".join(texts)])])
    sentences = [Sentence(0, 0, t, ((n, n + 1),), ()) for n, t in enumerate(texts)]
    source = SourceBook(members)
    assert source.match(book, sentences, titled=False) == 3
    doc = next(d for d in source.docs if d.path == "OEBPS/chapter2.xhtml")
    assert [s.text for _, s in doc.spans] == texts[:3]
    page = source.document(doc)
    spans = _spans(page)
    # "Go now and run." starts in <a> and ends inside <i>, which goes on: a span per piece
    assert spans == {"s00001": "Really, he said.", "s00002": "Go", "s00002-2": "now",
                     "s00002-3": "and", "s00002-4": "run.", "s00003": "Fast"}  # fmt: skip
    root = ElementTree.fromstring(page)
    first = root.find(f".//{XHTML}span")
    assert first is not None and [c.tag for c in first] == [f"{XHTML}em"]  # lifted over <em>
    assert "Code example" not in page.decode()


def test_an_epub_whose_pages_cannot_be_used_is_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: the read-along fell back to pages built from the text without a word."""
    monkeypatch.setenv("VOICEKIT_HOME", str(tmp_path / "home"))
    broken = tmp_path / "broken.epub"
    broken.write_bytes(b"not a zip any more")  # read once, then damaged
    book = Book(BOOK.meta, BOOK.chapters, source=broken)
    synth = Synthesizer(SynthSettings(device="cpu", backend="ort"))
    epub = tmp_path / "read.epub"
    events = list(synth.run(synth.plan(book), tmp_path / "b.wav", RunOptions(readalong=epub)))
    warnings = [w for e in events for w in e.warnings]
    assert any("built from the text voicekit read" in w for w in warnings), warnings
    assert zipfile.is_zipfile(epub)  # the read-along is still written
