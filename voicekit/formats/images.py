"""Image types by their first bytes; no third-party imports, so formats can use it cheaply."""

from __future__ import annotations

IMAGE_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
}
"""Every type sniff_image names, and the extension a file of it is saved under."""


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
