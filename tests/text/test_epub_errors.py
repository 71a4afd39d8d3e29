"""Bad EPUBs: a clear one-line InputError each (exit code 2 from the CLI), never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.text.epub_factory import (
    add_files,
    build_epub,
    raw_epub,
    remove_files,
    tiny_png,
)
from voicekit.cli.main import app
from voicekit.errors import InputError
from voicekit.text.epub import load_epub

AES = "http://www.w3.org/2001/04/xmlenc#aes128-cbc"
IDPF_FONT = "http://www.idpf.org/2008/embedding"
ADOBE_FONT = "http://ns.adobe.com/pdf/enc#RC"


def _encryption(entries: list[tuple[str, str]]) -> bytes:
    body = "".join(
        f'<enc:EncryptedData><enc:EncryptionMethod Algorithm="{alg}"/><enc:CipherData>'
        f'<enc:CipherReference URI="{uri}"/></enc:CipherData></enc:EncryptedData>'
        for alg, uri in entries
    )
    return (
        '<?xml version="1.0"?><encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
        f'xmlns:enc="http://www.w3.org/2001/04/xmlenc#">{body}</encryption>'
    ).encode()


def _error(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_epub(path)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "fake.epub"
    path.write_text("just some text, not a zip")
    assert "not an EPUB (not a zip archive)" in _error(path)


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.epub"
    path.write_bytes(b"")
    assert "not an EPUB" in _error(path)


def test_truncated_zip(tmp_path: Path) -> None:
    full = build_epub(tmp_path / "full.epub").read_bytes()
    path = tmp_path / "cut.epub"
    path.write_bytes(full[: len(full) // 2])
    assert "damaged or truncated" in _error(path)


def test_zip_without_container(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "plain.epub"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("hello.txt", "hi")
    assert "no META-INF/container.xml" in _error(path)


def test_missing_content_document(tmp_path: Path) -> None:
    path = build_epub(tmp_path / "b.epub")
    remove_files(path, {"EPUB/chapter2.xhtml"})
    message = _error(path)
    assert "damaged" in message and "chapter2.xhtml" in message


def test_malformed_package(tmp_path: Path) -> None:
    path = raw_epub(tmp_path / "bad.epub", {"OEBPS/content.opf": "<package><nothing/>"})
    assert "not a readable EPUB" in _error(path)


def test_no_readable_text(tmp_path: Path) -> None:
    opf = (
        '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
        '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Pics</dc:title>'
        '</metadata><manifest><item id="p" href="p.xhtml" media-type="application/xhtml+xml"/>'
        '</manifest><spine><itemref idref="p"/></spine></package>'
    )
    page = '<html><body><img src="a.png" alt="a drawing"/></body></html>'
    path = raw_epub(tmp_path / "pics.epub", {"OEBPS/content.opf": opf, "OEBPS/p.xhtml": page})
    assert "no readable text" in _error(path)


def test_drm_is_named(tmp_path: Path) -> None:
    path = build_epub(tmp_path / "drm.epub")
    add_files(path, {
        "META-INF/encryption.xml": _encryption([(AES, "EPUB/chapter1.xhtml"),
                                                (AES, "EPUB/chapter2.xhtml")]),
        "META-INF/rights.xml": b"<rights/>",
    })  # fmt: skip
    message = _error(path)
    assert "protected by Adobe DRM" in message and "2 encrypted" in message


def test_font_obfuscation_is_not_drm(tmp_path: Path) -> None:
    path = build_epub(tmp_path / "fonts.epub")
    add_files(path, {
        "META-INF/encryption.xml": _encryption([(IDPF_FONT, "EPUB/fonts/a.otf"),
                                                (ADOBE_FONT, "EPUB/fonts/b.ttf")]),
    })  # fmt: skip
    assert next(c.title for c in load_epub(path).chapters if c.included) == "Chapter 1: The Storm"


def test_missing_cover_image_loads_without_cover(tmp_path: Path) -> None:
    """A cover the package lists but the zip lacks costs the cover, not the book."""
    path = build_epub(tmp_path / "b.epub", cover=tiny_png())
    remove_files(path, {"EPUB/cover.png"})
    book = load_epub(path)
    assert book.meta.cover is None
    assert len([c for c in book.chapters if c.included]) == 3
    # ...and says so, rather than losing it silently
    assert book.meta.warnings == [
        "its cover image cover.png is missing from the file; "
        "the audiobook will have no cover"]


def test_missing_cover_is_one_warning_line_from_synth(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from voicekit.cli.main import app

    path = build_epub(tmp_path / "b.epub", cover=tiny_png())
    remove_files(path, {"EPUB/cover.png"})
    result = CliRunner().invoke(app, ["synth", str(path), "--dry-run", "--device", "cpu"])
    assert result.exit_code == 0
    lines = [ln for ln in result.stderr.splitlines() if "cover" in ln]
    assert lines == [f"warning: {path}: its cover image cover.png is missing from the "
                     "file; the audiobook will have no cover"]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (lambda p: p.write_text("not a zip"), "not an EPUB"),
        (lambda p: p.write_bytes(build_epub(p).read_bytes()[:300]), "truncated"),
    ],
)
def test_cli_one_line_no_traceback(tmp_path: Path, make, needle: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "book.epub"
    make(path)
    result = CliRunner().invoke(app, ["synth", str(path), "--dry-run", "--device", "cpu"])
    assert result.exit_code == 2
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0]
    assert "Traceback" not in result.output


def test_cli_names_drm(tmp_path: Path) -> None:
    path = build_epub(tmp_path / "drm.epub")
    add_files(path, {"META-INF/encryption.xml": _encryption([(AES, "EPUB/chapter1.xhtml")])})
    result = CliRunner().invoke(app, ["synth", str(path), "--dry-run", "--device", "cpu"])
    assert result.exit_code == 2
    assert "protected by DRM" in result.output and "Traceback" not in result.output
