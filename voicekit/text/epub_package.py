"""The EPUB package: zip, size and DRM checks, reading it with ebooklib, metadata and cover.

ebooklib reads the package; a small subclass of its reader keeps one missing image
(a cover listed but absent) or an unparsable nav from sinking the whole book, and
reads every member in bounded chunks (epub_limits.py), since ebooklib holds them all.
"""

from __future__ import annotations

import contextlib
import posixpath
import zipfile
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from ebooklib import epub
from lxml import etree

from voicekit.errors import InputError
from voicekit.formats.images import image_problem, sniff_image
from voicekit.text.epub_limits import Budget, EpubLimits, check_members
from voicekit.text.model import BookMeta
from voicekit.text.xhtml import local_name, parse_root, strip_markup

DC = "http://purl.org/dc/elements/1.1/"
OPF = "http://www.idpf.org/2007/opf"
DOC_SUFFIXES = (".xhtml", ".html", ".htm", ".xml", ".opf", ".ncx")
# Font obfuscation (IDPF, Adobe): not DRM, the text is readable.
_OBFUSCATION = {"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"}
_ENC_NS = "http://www.w3.org/2001/04/xmlenc#"


def check_container(path: Path, limits: EpubLimits) -> None:
    """A readable zip with an EPUB container, no DRM and sizes within ``limits``, or a
    one-line InputError. Nothing is unpacked before the sizes are checked."""
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    if not zipfile.is_zipfile(path):
        if head == b"PK\x03\x04":
            raise InputError(
                f"{path} is a damaged or truncated EPUB (its zip directory is missing)",
                hint="download or copy the file again",
            )
        raise InputError(f"{path} is not an EPUB (not a zip archive)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            if "META-INF/container.xml" not in names:
                raise InputError(f"{path} is not an EPUB (no META-INF/container.xml)")
            check_members(path, zf, limits)
            if "META-INF/encryption.xml" in names:
                xml = Budget(path, limits).read(zf, "META-INF/encryption.xml")
                _check_drm(path, xml, names)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise InputError(f"{path} is a damaged EPUB: {exc}") from exc


def _check_drm(path: Path, xml: bytes, names: set[str]) -> None:
    try:
        root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        raise InputError(f"{path} has an unreadable META-INF/encryption.xml: {exc}") from exc
    locked = []
    for data in root.iter(f"{{{_ENC_NS}}}EncryptedData"):
        method = data.find(f"{{{_ENC_NS}}}EncryptionMethod")
        algorithm = method.get("Algorithm", "") if method is not None else ""
        ref = data.find(f".//{{{_ENC_NS}}}CipherReference")
        uri = unquote(ref.get("URI", "")) if ref is not None else ""
        if algorithm not in _OBFUSCATION and uri.lower().endswith(DOC_SUFFIXES):
            locked.append(uri)
    if locked:
        scheme = (
            "Adobe DRM"
            if "META-INF/rights.xml" in names
            else "Readium LCP DRM"
            if "META-INF/license.lcpl" in names
            else "Apple FairPlay DRM"
            if "META-INF/sinf.xml" in names
            else "DRM"
        )
        raise InputError(
            f"{path} is protected by {scheme} ({len(locked)} encrypted content files); "
            "voicekit reads DRM-free EPUBs only",
        )


class MissingMember(KeyError):
    """A member the package names but the zip lacks (args[0] is its name)."""


class Reader(epub.EpubReader):  # type: ignore[misc]
    """ebooklib's reader, tolerant of what should not sink a whole book.

    A missing image or font (a cover listed but absent) reads as empty instead of
    failing the book; a nav or NCX that does not parse leaves the TOC empty, so
    headings and file order give the chapters instead. Every member is read in
    bounded chunks against the book's size limits.
    """

    def __init__(self, path: Path, limits: EpubLimits) -> None:
        super().__init__(str(path), {"ignore_ncx": True})
        self.budget = Budget(path, limits)

    def read_file(self, name: str) -> bytes:
        name = posixpath.normpath(name)
        try:
            return self.budget.read(self.zf, name)
        except KeyError as exc:
            if name.lower().endswith(DOC_SUFFIXES):
                raise MissingMember(name) from exc
            return b""

    def _parse_nav(self, data: bytes, base_path: str, navtype: str = "toc") -> None:
        with contextlib.suppress(
            IndexError, AttributeError, TypeError, ValueError, etree.LxmlError
        ):
            super()._parse_nav(data, base_path, navtype=navtype)

    def _parse_ncx(self, data: bytes) -> None:
        try:
            super()._parse_ncx(data)
        except (IndexError, AttributeError, TypeError, ValueError, etree.LxmlError):
            self.book.toc = []


def read_package(path: Path, limits: EpubLimits) -> Any:
    """The ebooklib book, or InputError saying what is wrong with the file."""
    reader = Reader(path, limits)
    try:
        book = reader.load()
        if not book.toc:  # an EPUB 3 nav without entries: try the EPUB 2 NCX as well
            ncx = next((i for i in book.get_items() if isinstance(i, epub.EpubNcx)), None)
            if ncx is not None and ncx.content:
                reader._parse_ncx(ncx.content)
    except MissingMember as exc:
        raise InputError(f"{path} is a damaged EPUB: {exc.args[0]} is missing from it") from exc
    except KeyError as exc:  # ebooklib looking up an id or member it expected
        raise InputError(f"{path} is a damaged EPUB (it lacks {exc})") from exc
    except epub.EpubException as exc:
        raise InputError(f"{path} is not a readable EPUB: {exc.msg}") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise InputError(f"{path} is a damaged EPUB: {exc}") from exc
    except (etree.LxmlError, AttributeError, IndexError, TypeError, ValueError) as exc:
        # ebooklib's way of saying the package document is malformed
        raise InputError(f"{path} is not a readable EPUB (malformed package: {exc})") from exc
    return book


def split_href(href: str, base: str = "") -> tuple[str, str]:
    """A link's target as an item file name (relative to the OPF folder), and its fragment.

    ``base`` is the folder of the document that holds the link; the OPF's own links
    (the guide) need none. Split before unquoting: %23 is part of a name, not a '#'.
    """
    target, _, fragment = href.partition("#")
    target = unquote(target)
    if base and target:
        target = posixpath.join(base, target)
    return posixpath.normpath(target) if target else "", unquote(fragment)


# --------------------------------------------------------------------------- metadata
def _meta_values(book: Any, ns: str, name: str | None) -> list[tuple[str, dict[str, str]]]:
    try:
        values = book.metadata.get(ns, {}).get(name, [])
    except AttributeError:
        return []
    return [(str(v or "").strip(), dict(o or {})) for v, o in values]


def _opf_metas(book: Any) -> list[tuple[str, dict[str, str]]]:
    """Every OPF <meta> (ebooklib files them under "meta", or None for some packages)."""
    return _meta_values(book, OPF, "meta") + _meta_values(book, OPF, None)


def read_metadata(book: Any, path: Path) -> BookMeta:
    first = {
        name: next((v for v, _ in _meta_values(book, DC, name) if v), "")
        for name in ("title", "language", "publisher", "description")
    }
    refinements: dict[str, dict[str, str]] = {}
    for value, others in _opf_metas(book):
        target = others.get("refines", "").lstrip("#")
        if target and others.get("property"):
            refinements.setdefault(target, {})[others["property"]] = value
    creators = _meta_values(book, DC, "creator")
    authors: list[str] = []
    for name, others in creators:
        role = next((v for k, v in others.items() if k.endswith("role")), "")
        role = role or refinements.get(others.get("id", ""), {}).get("role", "")
        if name and role.lower() in ("", "aut") and name not in authors:
            authors.append(name)
    if not authors:
        authors = [n for n, _ in creators if n]
    dates = _meta_values(book, DC, "date")
    date = next((v for v, o in dates if "publication" in o.values()), "")
    date = date or next((v for v, _ in dates if v), "")
    declared = _declared_covers(book)
    cover, mime, rejected = _cover(book, declared)
    warnings = []
    if cover is None and (missing := _missing_cover(declared)):
        rejected = rejected or f"{missing} is missing from the file"
    if cover is None and rejected:  # found while planning, so no synthesis is lost to it
        warnings.append(f"its cover image {rejected}; the audiobook will have no cover")
    return BookMeta(
        title=first["title"] or path.stem,
        authors=authors,
        language=first["language"],
        publisher=first["publisher"],
        date=date,
        description=strip_markup(first["description"]),
        cover=cover,
        cover_mime=mime,
        warnings=warnings,
    )


def _declared_covers(book: Any) -> list[Any]:
    """Items the package names as its cover: cover-image property, <meta name="cover">.

    An entry is None where the meta names no item at all.
    """
    declared: list[Any] = [i for i in book.get_items() if isinstance(i, epub.EpubCover)]
    for _, others in _opf_metas(book):
        if others.get("name") == "cover" and others.get("content"):
            ref = others["content"]
            declared.append(book.get_item_with_id(ref) or book.get_item_with_href(ref))
    return declared


def _cover(book: Any, declared: list[Any]) -> tuple[bytes | None, str, str]:
    """The cover image: the declared ones, the guide's cover page, an image named cover.

    Returns the first usable one and its type, and else what was wrong with the first
    image found ("cover.gif claims 16000x16000 pixels...") or ''. A cover that would
    only fail at encoding, hours later, is dropped now.
    """
    candidates = list(declared)
    for ref in getattr(book, "guide", None) or []:
        if (ref.get("type") or "").lower() == "cover" and ref.get("href"):
            page = book.get_item_with_href(split_href(ref["href"])[0])
            candidates.extend(_page_images(book, page))
    candidates.extend(
        i
        for i in book.get_items()
        if (i.media_type or "").startswith("image/") and "cover" in f"{i.id} {i.file_name}".lower()
    )
    rejected = ""
    for item in candidates:
        data = getattr(item, "content", None) if item is not None else None
        if data and (mime := sniff_image(data)):
            problem = image_problem(data)
            if not problem:
                return bytes(data), mime, ""
            rejected = rejected or f"{item.file_name} {problem}"
    return None, "", rejected


def _missing_cover(declared: list[Any]) -> str:
    """The file name of a declared cover the zip lacks ('' if none)."""
    for item in declared:
        if item is not None and not getattr(item, "content", None):
            return str(item.file_name)
    return ""


def _page_images(book: Any, page: Any) -> list[Any]:
    if page is None or not getattr(page, "content", None):
        return []
    root = parse_root(page.content)
    if root is None:
        return []
    found = []
    base = posixpath.dirname(page.file_name)
    for el in root.iter():
        if local_name(el.tag) in ("img", "image"):
            src = el.get("src") or next((v for k, v in el.attrib.items() if k.endswith("href")), "")
            if src:
                found.append(book.get_item_with_href(split_href(src, base)[0]))
    return found
