"""A read-along EPUB 3 (``--readalong book.epub``): the text, the audio, and Media Overlays.

Each chapter is an XHTML document with a ``<span id>`` per sentence; a SMIL file per
chapter maps each sentence to its clip of one MP3 of the book, with the times the
job's sentence lengths give (``captions.book_sentences``), and the package carries
``media:duration`` per overlay and for the book, so readers (Apple Books, Thorium,
Storyteller-style players) highlight each sentence as it is read.

For EPUB input the read-along is the source EPUB itself, its own XHTML with a span
around each spoken sentence (``readalong_source.py``), its styles, images and front
matter kept. For text and Markdown input (or an EPUB whose package cannot be read
back, or whose pages hold none of the spoken sentences), the XHTML is built from the
book's text as voicekit read it.

Written with zipfile and small templates: ebooklib renders every document through
its own template and does not write SMIL timings or ``media:duration``, and an EPUB
is a simple zip (``mimetype`` first and stored) that is easier to keep valid by hand.
"""

from __future__ import annotations

import hashlib
import io
import os
import posixpath
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from voicekit.errors import OutputError, os_error
from voicekit.formats.encoders import ENCODERS, EncodeOptions
from voicekit.formats.timeline import Timeline
from voicekit.synth.assemble import stream_pcm
from voicekit.synth.captions import Sentence, book_sentences
from voicekit.synth.manifest import Manifest
from voicekit.synth.plan import Plan
from voicekit.synth.readalong_source import NotOverlayable, SourceBook
from voicekit.system.fsutil import replacing
from voicekit.text.model import Book

AUDIO = "audio/book.mp3"
ACTIVE_CLASS = "-epub-media-overlay-active"

_CONTAINER = """<?xml version="1.0" encoding="UTF-8"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles>
    <rootfile full-path="OEBPS/package.opf" media-type="application/oebps-package+xml"/>
  </rootfiles>
</container>
"""

_CSS = f""".{ACTIVE_CLASS} {{ background-color: #ffe58a; }}
h1 {{ font-size: 1.4em; }}
"""


@dataclass
class _Chapter:
    key: int
    title: str
    paragraphs: list[list[tuple[str, Sentence]]] = field(default_factory=list)
    """Each paragraph's sentences with their span ids."""
    last_paragraph: int = -1

    @property
    def name(self) -> str:
        return f"c{self.key + 1:04d}"


def _clock(samples: int, rate: int) -> str:
    """A SMIL full clock value, to the millisecond."""
    ms = round(samples * 1000 / rate)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}"


def _ms(samples: int, rate: int) -> int:
    return round(samples * 1000 / rate)


def _chapters(sentences: list[Sentence], manifest: Manifest) -> list[_Chapter]:
    chapters: dict[int, _Chapter] = {}
    for n, sentence in enumerate(sentences, 1):
        chapter = chapters.get(sentence.chapter)
        if chapter is None:
            title = manifest.chapter_title(sentence.chapter)
            chapter = chapters[sentence.chapter] = _Chapter(sentence.chapter, title)
        if sentence.paragraph != chapter.last_paragraph:
            chapter.paragraphs.append([])
            chapter.last_paragraph = sentence.paragraph
        chapter.paragraphs[-1].append((f"s{n:05d}", sentence))
    return list(chapters.values())


def _xhtml(chapter: _Chapter, language: str, titled: bool) -> str:
    lang = quoteattr(language)
    body = []
    for i, paragraph in enumerate(chapter.paragraphs):
        spans = " ".join(f'<span id="{sid}">{escape(s.text)}</span>' for sid, s in paragraph)
        tag = "h1" if i == 0 and titled else "p"
        body.append(f"    <{tag}>{spans}</{tag}>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" '
        f'xmlns:epub="http://www.idpf.org/2007/ops" xml:lang={lang} lang={lang}>\n'
        f"  <head>\n    <title>{escape(chapter.title)}</title>\n"
        '    <link rel="stylesheet" type="text/css" href="style.css"/>\n  </head>\n'
        f'  <body>\n  <section id="{chapter.name}">\n'
        + "\n".join(body)
        + "\n  </section>\n  </body>\n</html>\n"
    )


def _smil(chapter: _Chapter, rate: int) -> str:
    pars = []
    for paragraph in chapter.paragraphs:
        for sid, s in paragraph:
            pars.append(
                f'      <par id="p{sid}">\n'
                f'        <text src="{chapter.name}.xhtml#{sid}"/>\n'
                f'        <audio src="{AUDIO}" clipBegin="{_clock(s.start, rate)}" '
                f'clipEnd="{_clock(s.end, rate)}"/>\n      </par>'
            )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:epub="http://www.idpf.org/2007/ops" '
        'version="3.0">\n  <body>\n'
        f'    <seq id="seq-{chapter.name}" epub:textref="{chapter.name}.xhtml#{chapter.name}">\n'
        + "\n".join(pars)
        + "\n    </seq>\n  </body>\n</smil>\n"
    )


def _duration_ms(chapter: _Chapter, rate: int) -> int:
    """What the overlay plays: the sum of its clips (what epubcheck adds up)."""
    clips = [s for paragraph in chapter.paragraphs for _, s in paragraph]
    return sum(_ms(s.end, rate) - _ms(s.start, rate) for s in clips)


def _ms_clock(ms: int) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms:03d}"


def _nav_page(items: str, title: str, language: str) -> str:
    """The EPUB 3 navigation document around its list items."""
    lang = quoteattr(language)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
        '<html xmlns="http://www.w3.org/1999/xhtml" '
        f'xmlns:epub="http://www.idpf.org/2007/ops" xml:lang={lang} lang={lang}>\n'
        f"  <head>\n    <title>{escape(title)}</title>\n  </head>\n  <body>\n"
        '    <nav epub:type="toc" id="toc">\n'
        f"      <h1>{escape(title)}</h1>\n      <ol>\n{items}\n      </ol>\n    </nav>\n"
        "  </body>\n</html>\n"
    )


def _nav(chapters: list[_Chapter], title: str, language: str) -> str:
    items = "\n".join(
        f'        <li><a href="{c.name}.xhtml">{escape(c.title)}</a></li>' for c in chapters
    )
    return _nav_page(items, title, language)


def _package(chapters: list[_Chapter], manifest: Manifest, rate: int, identifier: str) -> str:
    meta = manifest.meta
    title = str(meta.get("title") or "Untitled")
    language = str(meta.get("language") or "en").replace("_", "-")
    modified = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [
        f'    <dc:identifier id="uid">{escape(identifier)}</dc:identifier>',
        f"    <dc:title>{escape(title)}</dc:title>",
        f"    <dc:language>{escape(language)}</dc:language>",
        f'    <meta property="dcterms:modified">{modified}</meta>',
    ]
    lines += [f"    <dc:creator>{escape(str(a))}</dc:creator>" for a in meta.get("authors") or []]
    total = 0
    for c in chapters:
        ms = _duration_ms(c, rate)
        total += ms
        lines.append(
            f'    <meta property="media:duration" refines="#smil-{c.name}">{_ms_clock(ms)}</meta>'
        )
    lines.append(f'    <meta property="media:duration">{_ms_clock(total)}</meta>')
    lines.append(f'    <meta property="media:active-class">{ACTIVE_CLASS}</meta>')
    items = [
        '    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>',
        '    <item id="css" href="style.css" media-type="text/css"/>',
        f'    <item id="audio" href="{AUDIO}" media-type="audio/mpeg"/>',
    ]
    for c in chapters:
        items.append(
            f'    <item id="{c.name}" href="{c.name}.xhtml" media-type="application/xhtml+xml" '
            f'media-overlay="smil-{c.name}"/>'
        )
        items.append(
            f'    <item id="smil-{c.name}" href="{c.name}.smil" media-type="application/smil+xml"/>'
        )
    spine = "\n".join(f'    <itemref idref="{c.name}"/>' for c in chapters)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="uid" '
        f"xml:lang={quoteattr(language)}>\n"
        '  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        + "\n".join(lines)
        + "\n  </metadata>\n  <manifest>\n"
        + "\n".join(items)
        + f"\n  </manifest>\n  <spine>\n{spine}\n  </spine>\n</package>\n"
    )


def source_epub(book: Book) -> Path | None:
    """The EPUB a book was read from, whose pages the read-along is; None for other input."""
    source = book.source
    return source if source is not None and source.suffix.lower() == ".epub" else None


def _source_book(plan: Plan, data: bytes | None) -> SourceBook | None:
    """The source EPUB (``data``, else read from its path), read back for its markup;
    None for other input."""
    source = source_epub(plan.book)
    if source is None:
        return None
    try:
        with zipfile.ZipFile(source if data is None else io.BytesIO(data)) as z:
            members = {i.filename: z.read(i) for i in z.infolist() if not i.is_dir()}
        return SourceBook(members)
    except (OSError, zipfile.BadZipFile, NotOverlayable):
        return None  # read before, so rare: the text-built read-along still works


def _unique(members: set[str], wanted: str) -> str:
    stem, dot, ext = wanted.rpartition(".")
    name, n = wanted, 1
    while name in members:
        n += 1
        name = f"{stem}-{n}{dot}{ext}"
    members.add(name)
    return name


def _source_smil(
    sid_sentences: list[tuple[str, Sentence]], doc: str, smil: str, audio: str, rate: int
) -> str:
    text_href = posixpath.relpath(doc, posixpath.dirname(smil))
    audio_href = posixpath.relpath(audio, posixpath.dirname(smil))
    pars = [
        f'      <par id="p{sid}">\n'
        f'        <text src="{escape(text_href)}#{sid}"/>\n'
        f'        <audio src="{escape(audio_href)}" clipBegin="{_clock(s.start, rate)}" '
        f'clipEnd="{_clock(s.end, rate)}"/>\n      </par>'
        for sid, s in sid_sentences
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<smil xmlns="http://www.w3.org/ns/SMIL" xmlns:epub="http://www.idpf.org/2007/ops" '
        'version="3.0">\n'
        "  <body>\n" + "\n".join(pars) + "\n  </body>\n</smil>\n"
    )


def _source_nav(links: list[tuple[str, str]], nav: str, title: str, language: str) -> str:
    base = posixpath.dirname(nav)
    items = "\n".join(
        f'        <li><a href="{escape(posixpath.relpath(path.partition("#")[0], base or "."))}'
        f'{"#" + escape(path.partition("#")[2]) if "#" in path else ""}">'
        f"{escape(label or 'Untitled')}</a></li>"
        for label, path in links
    )
    return _nav_page(items, title, language)


def _write_source(
    z: zipfile.ZipFile, book: SourceBook, audio: Path, manifest: Manifest, rate: int
) -> None:
    """The source EPUB with its sentences in spans, the overlays, the audio, the package."""
    names = set(book.members)
    audio_member = _unique(names, posixpath.join(book.base, AUDIO))
    was_epub2 = not book.opf.get("version", "3").startswith("3")
    overlays = []
    files: dict[str, bytes] = {}
    total = 0
    for doc in book.overlaid():
        smil = _unique(names, doc.path.rpartition(".")[0] + ".smil")
        ms = sum(_ms(s.end, rate) - _ms(s.start, rate) for _, s in doc.spans)
        total += ms
        overlays.append((doc, smil, _ms_clock(ms)))
        files[smil] = _source_smil(doc.spans, doc.path, smil, audio_member, rate).encode()
    for doc in book.docs:  # an EPUB 2 page's DOCTYPE is an error in EPUB 3: rewrite them all
        if doc.tree is not None and (doc.spans or was_epub2):
            files[doc.path] = book.document(doc)
    nav = None
    if not book.has_nav():
        nav = _unique(names, posixpath.join(book.base, "nav.xhtml"))
        title = str(manifest.meta.get("title") or "Contents")
        language = str(manifest.meta.get("language") or "en").replace("_", "-")
        files[nav] = _source_nav(book.nav_links(), nav, title, language).encode()
    files[book.opf_path] = book.package(overlays, audio_member, _ms_clock(total), ACTIVE_CLASS, nav)
    z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
    for name, data in book.members.items():
        if name != "mimetype" and name not in files:
            z.writestr(name, data, zipfile.ZIP_DEFLATED)
    for name, data in files.items():
        z.writestr(name, data, zipfile.ZIP_DEFLATED)
    z.write(audio, audio_member, zipfile.ZIP_STORED)


def _write_built(
    z: zipfile.ZipFile,
    chapters: list[_Chapter],
    manifest: Manifest,
    audio: Path,
    rate: int,
    titled: bool,
) -> None:
    """The read-along built from the text: one XHTML page and one overlay per chapter."""
    language = str(manifest.meta.get("language") or "en").replace("_", "-")
    identifier = "urn:voicekit:" + hashlib.sha256(manifest.stable_json().encode()).hexdigest()[:32]
    z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")
    deflate = zipfile.ZIP_DEFLATED
    z.writestr("META-INF/container.xml", _CONTAINER, deflate)
    z.writestr("OEBPS/package.opf", _package(chapters, manifest, rate, identifier), deflate)
    title = str(manifest.meta.get("title") or "Contents")
    z.writestr("OEBPS/nav.xhtml", _nav(chapters, title, language), deflate)
    z.writestr("OEBPS/style.css", _CSS, deflate)
    for c in chapters:
        z.writestr(f"OEBPS/{c.name}.xhtml", _xhtml(c, language, titled), deflate)
        z.writestr(f"OEBPS/{c.name}.smil", _smil(c, rate), deflate)
    z.write(audio, f"OEBPS/{AUDIO}", zipfile.ZIP_STORED)


def write_readalong(
    folder: Path,
    manifest: Manifest,
    plan: Plan,
    timeline: Timeline,
    target: Path,
    *,
    source: bytes | None = None,
) -> list[str]:
    """Write ``target``: the book's text, one MP3 of its audio (whatever the audiobook's
    format: EPUB readers play MP3 and AAC), and the overlays. Returns warnings for the
    user: an EPUB whose own pages could not be used is said, never silently replaced.
    ``source``: the source EPUB's bytes, where this process may not read its path (a
    cluster worker); None: read from ``plan.book.source``."""
    rate = manifest.sample_rate
    sentences = [s for s in book_sentences(folder, manifest, plan) if s.text]
    language = str(manifest.meta.get("language") or "en").replace("_", "-")
    titled = plan.settings.speak_titles
    pages = _source_book(plan, source)
    if pages is not None and not pages.match(plan.book, sentences, titled):
        pages = None  # nothing found in the markup: the text-built book says more
    warnings = []
    if pages is None and source_epub(plan.book) is not None:
        warnings.append(
            f"warning: {target.name} is built from the text voicekit read, not from the "
            "book's own pages (they could not be read, or none of its sentences were found "
            "in them): images and styles are not carried over"
        )
    chapters = _chapters(sentences, manifest)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".mp3", dir=target.parent)
        os.close(fd)
        audio = Path(name)
        try:
            meta = {"title": manifest.meta.get("title") or "", "language": language}
            ENCODERS["mp3"](audio, timeline, stream_pcm(folder, manifest), EncodeOptions(meta=meta))
            with replacing(target) as tmp, zipfile.ZipFile(tmp, "w") as z:
                if pages is not None:
                    _write_source(z, pages, audio, manifest, rate)
                else:
                    _write_built(z, chapters, manifest, audio, rate, titled)
        finally:
            audio.unlink(missing_ok=True)
    except OSError as exc:
        raise os_error(exc, OutputError, f"cannot write the read-along EPUB {target}") from exc
    return warnings
