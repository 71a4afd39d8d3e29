"""Bad covers are found while planning, never after the synthesis (issue 9, item 5).

A cover whose header claims a huge size, or that is cut short, is dropped from an EPUB
with one warning line (as a missing cover is); ``convert --cover`` refuses it with a
one-line error before any decoding or encoding. A job manifest's cover must lie
inside the job folder.
"""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.cli.test_convert import make_job
from tests.reliability import hostile_epub as h
from voicekit.cli.main import app
from voicekit.errors import InputError
from voicekit.formats import ffmpeg
from voicekit.formats.convert import convert
from voicekit.formats.images import MAX_SIDE, image_problem, image_size
from voicekit.formats.tags import load_cover
from voicekit.synth.assemble import open_source
from voicekit.synth.job import MANIFEST
from voicekit.text.epub import load_epub

runner = CliRunner()


def _ffmpeg() -> str:
    found = ffmpeg.candidates()
    if not found:
        pytest.skip("no ffmpeg")
    return found[0]


def _one_error_line(result: object, needle: str) -> str:
    assert result.exit_code == 2, result.output  # type: ignore[attr-defined]
    lines = [ln for ln in result.output.splitlines() if ln.strip()]  # type: ignore[attr-defined]
    assert lines and lines[0].startswith("error:") and needle in lines[0], lines
    assert "Traceback" not in result.output  # type: ignore[attr-defined]
    return lines[0]


@pytest.mark.parametrize(
    ("codec", "suffix"),
    [("mjpeg", "jpg"), ("png", "png"), ("gif", "gif"), ("libwebp", "webp"),
     ("libwebp_lossless", "webp")],
)  # fmt: skip
def test_header_sizes_of_images_ffmpeg_makes(tmp_path: Path, codec: str, suffix: str) -> None:
    binary = _ffmpeg()
    args = ["-lossless", "1"] if codec == "libwebp_lossless" else []
    codec = "libwebp" if codec == "libwebp_lossless" else codec
    if codec not in ffmpeg.encoders_of(binary):
        pytest.skip(f"this ffmpeg has no {codec} encoder")
    out = tmp_path / f"img.{suffix}"
    subprocess.run(
        [binary, "-v", "error", "-f", "lavfi", "-i", "testsrc=size=37x23:rate=1",
         "-frames:v", "1", "-c:v", codec, *args, str(out)],
        check=True,
    )  # fmt: skip
    data = out.read_bytes()
    assert image_size(data) == (37, 23)
    assert image_problem(data) == ""
    assert "truncated" in image_problem(data[: len(data) // 2])


def test_huge_and_short_headers_are_named() -> None:
    assert image_size(h.huge_gif()) == (16000, 16000)
    assert image_size(h.huge_png()) == (16000, 16000)
    assert "16000x16000" in image_problem(h.huge_gif())
    assert "16000x16000" in image_problem(h.huge_png())
    assert image_problem(h.huge_gif(MAX_SIDE, 10)) == ""  # at the limit is fine
    assert "header is incomplete" in image_problem(h.small_png()[:20])
    assert "not a JPEG, PNG, GIF or WebP" in image_problem(b"BM" + bytes(60))


@pytest.mark.parametrize("kind", ["gif", "png"])
def test_epub_huge_cover_is_dropped_with_one_warning(tmp_path: Path, kind: str) -> None:
    book = load_epub(h.huge_cover(tmp_path, kind))
    assert book.meta.cover is None and book.meta.cover_mime == ""
    assert len(book.meta.warnings) == 1
    warning = book.meta.warnings[0]
    assert f"cover.{kind}" in warning and "16000x16000" in warning and "no cover" in warning


def test_epub_truncated_cover_is_dropped_with_one_warning(tmp_path: Path) -> None:
    book = load_epub(h.truncated_cover(tmp_path))
    assert book.meta.cover is None
    assert [w for w in book.meta.warnings if "truncated" in w and "no cover" in w]


def test_epub_good_cover_is_kept(tmp_path: Path) -> None:
    book = load_epub(h.with_cover(tmp_path, h.small_png(300, 400)))
    assert book.meta.cover == h.small_png(300, 400) and book.meta.warnings == []


def test_synth_plan_names_the_dropped_cover(tmp_path: Path) -> None:
    path = h.huge_cover(tmp_path, "gif")
    result = runner.invoke(app, ["synth", str(path), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["cover"] is None
    assert len(plan["warnings"]) == 1 and "16000x16000" in plan["warnings"][0]


@pytest.mark.parametrize(
    ("image", "needle"),
    [(h.huge_gif(), "16000x16000"), (h.huge_png(), "16000x16000"),
     (h.small_png(64, 64)[:60], "truncated")],
    ids=["huge-gif", "huge-png", "truncated-png"],
)  # fmt: skip
def test_load_cover_refuses_before_decoding(tmp_path: Path, image: bytes, needle: str) -> None:
    path = tmp_path / "bad.img"
    path.write_bytes(image)
    with pytest.raises(InputError, match=needle):  # said from the header: nothing decoded
        load_cover(path)


def test_convert_cover_bad_image_is_exit_2_before_encoding(tmp_path: Path) -> None:
    job = make_job(tmp_path / "book.voicekit-job")
    bad = tmp_path / "huge.gif"
    bad.write_bytes(h.huge_gif())
    out = tmp_path / "out.m4b"
    result = runner.invoke(app, ["convert", str(job), "-o", str(out), "--cover", str(bad)])
    line = _one_error_line(result, "16000x16000")
    assert str(bad) in line
    assert not out.exists()


def test_convert_cover_of_unknown_type_is_bounded_by_ffmpeg(tmp_path: Path) -> None:
    """A type no header reader here knows goes to ffmpeg, which refuses it by its size.

    (Unbounded, ffmpeg turns this 1 KB run-length BMP into a 256-megapixel PNG: 0.5 GB.)
    """
    _ffmpeg()
    palette = bytes(4 * 256)
    rle = b"\x00\x01"  # end of bitmap: every pixel is colour 0
    start = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, 16000, 16000, 1, 8, 1, len(rle), 0, 0, 256, 0)
    bmp = tmp_path / "huge.bmp"
    bmp.write_bytes(b"BM" + struct.pack("<IHHI", start + len(rle), 0, 0, start) + info
                    + palette + rle)
    with pytest.raises(InputError, match="not an image voicekit can use"):
        load_cover(bmp)


@pytest.mark.parametrize("where", ["../outside.png", "ABSOLUTE", "link.png"])
def test_job_manifest_cover_outside_the_job_folder_is_refused(
    tmp_path: Path, where: str
) -> None:
    job = make_job(tmp_path / "book.voicekit-job")
    outside = tmp_path / "outside.png"
    outside.write_bytes(h.small_png())
    if where == "ABSOLUTE":
        where = str(outside)
    elif where == "link.png":
        (job / "link.png").symlink_to(outside)
    manifest = job / MANIFEST
    data = json.loads(manifest.read_text())
    data["cover"] = where
    manifest.write_text(json.dumps(data))
    out = tmp_path / "out.m4b"
    with pytest.raises(InputError, match="outside the job folder"):
        convert(job, out, "m4b", opener=open_source)
    assert not out.exists()
