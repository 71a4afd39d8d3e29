"""Image types, sizes and completeness by their headers; no third-party imports, so formats
can use it cheaply.

Sizes are read from the header by hand rather than with an imaging library: the only
one that would do (Pillow) is not a dependency, and four fixed header layouts are a few
lines each. Reading the header decodes nothing, so a tiny file that claims 16000x16000
pixels costs nothing to refuse, where decoding it (ffmpeg converting a GIF cover) took
gigabytes.
"""

from __future__ import annotations

import struct

IMAGE_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
}
"""Every type sniff_image names, and the extension a file of it is saved under."""

MAX_SIDE = 10_000
"""Pixels on the longer side of a cover (the largest that stores accept)."""
MAX_PIXELS = 40_000_000
"""Pixels in all, about 5000x8000: decoding one (GIF or WebP to PNG) then stays near 0.5 GB."""


def sniff_image(data: bytes) -> str:
    """The image type by its first bytes: a key of IMAGE_EXTENSIONS, or '' if none of them."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return ""


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None when the header is cut short or unknown."""
    try:
        kind = sniff_image(data)
        if kind == "image/png" and data[12:16] == b"IHDR":
            w, h = struct.unpack(">II", data[16:24])
            return int(w), int(h)
        if kind == "image/gif":
            w, h = struct.unpack("<HH", data[6:10])
            return int(w), int(h)
        if kind == "image/jpeg":
            return _jpeg_size(data)
        if kind == "image/webp":
            return _webp_size(data)
    except struct.error:  # the header ends early
        return None
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """The size in the first start-of-frame marker (SOF0-15 but DHT, JPG and DAC)."""
    i = 2
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0x01, *range(0xD0, 0xD8)):  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return int(w), int(h)
        if marker == 0xDA:  # scan data before any frame header: not a usable JPEG
            return None
        i += 2 + length
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        w, h = struct.unpack("<HH", data[26:30])
        return int(w & 0x3FFF), int(h & 0x3FFF)
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        (bits,) = struct.unpack("<I", data[21:25])
        return int((bits & 0x3FFF) + 1), int(((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _complete(data: bytes, kind: str) -> bool:
    """Whether the image ends as its format says it must (what a header check can tell)."""
    if kind == "image/png":
        return data.rfind(b"IEND") >= 8
    if kind == "image/jpeg":
        scan = data.find(b"\xff\xda")
        return scan > 0 and data.rfind(b"\xff\xd9") > scan
    if kind == "image/gif":
        return data.rstrip(b"\x00").endswith(b";")
    if kind == "image/webp":
        (riff,) = struct.unpack("<I", data[4:8])
        return len(data) >= riff + 8
    return False


def image_problem(data: bytes) -> str:
    """What makes ``data`` unusable as a cover, as words after "the image ..."; '' if nothing.

    Usable: JPEG, PNG, GIF or WebP by its magic bytes; a size that the header gives,
    within MAX_SIDE and MAX_PIXELS; not cut short, as far as the format's end marker
    tells.
    """
    kind = sniff_image(data)
    if not kind:
        return "is not a JPEG, PNG, GIF or WebP image"
    size = image_size(data)
    if size is None:
        return f"is damaged or truncated (its {kind[6:].upper()} header is incomplete)"
    w, h = size
    if not w or not h:
        return f"is damaged (its header says {w}x{h} pixels)"
    if max(w, h) > MAX_SIDE or w * h > MAX_PIXELS:
        return (
            f"claims {w}x{h} pixels, over the limit of {MAX_SIDE} per side "
            f"and {MAX_PIXELS // 1_000_000} million in all"
        )
    if not _complete(data, kind):
        return f"is truncated (the {kind[6:].upper()} data ends early)"
    return ""
