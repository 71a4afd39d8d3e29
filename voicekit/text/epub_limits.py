"""How much an EPUB may unpack to, and how many chapters it may have.

An EPUB is a zip, and a zip can lie about its size: a 2 MB file can hold 2 GB of text,
and ebooklib reads every member into memory. So the zip's directory is checked against
these limits before anything is unpacked, and every member is read in bounded chunks
that stop at the limit whatever the directory said. A real book is far below each
default (War and Peace is 3 MB of text); ``--epub-limit NAME=N`` raises one for a book
that needs it.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, fields, replace
from pathlib import Path

from voicekit.errors import InputError

MB = 1 << 20
RATIO_FLOOR = MB
"""Members smaller than this unpacked are not ratio-checked: a short run of spaces
packs 1000:1 and harms no one."""
_CHUNK = MB


@dataclass(frozen=True)
class EpubLimits:
    file_mb: int = 64
    """One member of the zip, unpacked (a chapter, an image)."""
    book_mb: int = 512
    """Every member together, unpacked: ebooklib holds them all in memory."""
    text_mb: int = 64
    """The content documents of the reading order together (about 10 million words)."""
    ratio: int = 100
    """How many times a member over 1 MB may grow when unpacked (text packs 3-10 times)."""
    chapters: int = 3000
    """Documents in the reading order, and table-of-contents entries."""


NAMES = {f.name.replace("_", "-"): f.name for f in fields(EpubLimits)}
"""The names ``--epub-limit`` takes (file-mb, book-mb, text-mb, ratio, chapters)."""

def parse_limits(values: list[str] | None) -> EpubLimits:
    """``["book-mb=2048", "chapters=9000"]`` over the defaults, or a one-line InputError."""
    limits = EpubLimits()
    for value in values or []:
        name, _, number = value.partition("=")
        key = NAMES.get(name.strip().lower())
        if key is None or not number.strip().isdigit() or int(number) < 1:
            raise InputError(
                f"--epub-limit {value!r} is not NAME=N with a whole number N of at least 1",
                hint=f"names: {', '.join(NAMES)}",
            )
        limits = replace(limits, **{key: int(number)})
    return limits


def over(path: Path | str, what: str, name: str, limit: int, unit: str = "") -> InputError:
    """The one error every limit gives: what is over which limit, and how to raise it."""
    return InputError(
        f"{path} {what}, over the limit of {limit}{unit} (--epub-limit {name}=N raises it)",
        hint="a damaged or hostile EPUB? raise a limit only for a book you trust",
    )


def _mb(size: int) -> str:
    return f"{size / MB:,.0f} MB" if size >= MB else f"{size / 1024:,.0f} KB"


def check_members(path: Path, zf: zipfile.ZipFile, limits: EpubLimits) -> None:
    """The sizes the zip's directory declares, against the limits, before unpacking."""
    total = 0
    for info in zf.infolist():
        size = info.file_size
        if size > limits.file_mb * MB:
            raise over(
                path, f"has a member {info.filename} that unpacks to {_mb(size)}",
                "file-mb", limits.file_mb, " MB per file",
            )  # fmt: skip
        packed = max(info.compress_size, 1)
        if size > RATIO_FLOOR and size > limits.ratio * packed:
            raise over(
                path,
                f"has a member {info.filename} packed {size // packed}:1 "
                f"({_mb(packed)} unpacks to {_mb(size)})",
                "ratio", limits.ratio, ":1",
            )  # fmt: skip
        total += size
    if total > limits.book_mb * MB:
        raise over(
            path, f"unpacks to {_mb(total)} in all", "book-mb", limits.book_mb, " MB per book"
        )


class Budget:
    """Bytes left to unpack from one book; each member is read in chunks against it."""

    def __init__(self, path: Path, limits: EpubLimits) -> None:
        self.path = path
        self.limits = limits
        self.left = limits.book_mb * MB

    def read(self, zf: zipfile.ZipFile, name: str) -> bytes:
        """One member, stopping as soon as it passes a limit (declared sizes can lie)."""
        cap = min(self.limits.file_mb * MB, self.left)
        parts: list[bytes] = []
        size = 0
        with zf.open(name) as member:
            while chunk := member.read(_CHUNK):
                size += len(chunk)
                if size > cap:  # the directory understated it (CPython stops there already)
                    if cap < self.limits.file_mb * MB:
                        raise over(self.path, "unpacks to more than its directory says",
                                   "book-mb", self.limits.book_mb, " MB per book")
                    raise over(self.path, f"has a member {name} that unpacks to more than "
                               "its directory says", "file-mb", self.limits.file_mb,
                               " MB per file")
                parts.append(chunk)
        self.left -= size
        return b"".join(parts)
