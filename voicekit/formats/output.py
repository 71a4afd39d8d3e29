"""Output files: which format, and writing one atomically from a finished job."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import InputError, OutputError
from voicekit.formats.assemble import Timeline
from voicekit.formats.tags import Cover, load_cover
from voicekit.formats.wav import WavWriter
from voicekit.settings import FORMATS

EXTENSIONS = {"wav": ".wav", "flac": ".flac", "mp3": ".mp3", "opus": ".opus", "m4b": ".m4b"}
ALIASES = {".m4a": "m4b", ".ogg": "opus", ".wave": "wav"}


@dataclass
class EncodeOptions:
    """What an encoder needs besides the audio."""

    bitrate: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """title, authors, language, publisher, date, description, genre, track..."""
    cover: Path | Cover | None = None
    """A cover image file, or the picture already loaded."""

    def cover_image(self) -> Cover | None:
        """The cover, ready to embed; InputError if it is not a usable image.

        A file is read (and converted, for GIF, WebP...) on the first call and the
        result kept, so a book split into many files does that work once.
        """
        if isinstance(self.cover, Path):
            self.cover = load_cover(self.cover)
        return self.cover


Encoder = Callable[[Path, Timeline, Iterable[np.ndarray], EncodeOptions], None]


def _encode_wav(
    path: Path, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
) -> None:
    with WavWriter(path, timeline.sample_rate) as writer:
        for chunk in pcm:
            writer.write(chunk)


ENCODERS: dict[str, Encoder] = {"wav": _encode_wav}


def register_encoder(fmt: str, encoder: Encoder) -> None:
    ENCODERS[fmt] = encoder


def format_for(output: Path, requested: str | None, default: str = "wav") -> str:
    """``--format`` wins; else the extension, else ``default``; unknown extensions are refused."""
    if requested:
        fmt = requested.lower()
        if fmt not in FORMATS:
            raise InputError(f"unknown format '{requested}'; choose from {', '.join(FORMATS)}")
        return fmt
    suffix = output.suffix.lower()
    if not suffix:
        return default
    fmt = ALIASES.get(suffix, suffix.lstrip("."))
    if fmt not in FORMATS:
        raise InputError(
            f"unknown output extension '{suffix}' for {output}; use "
            f"{', '.join(EXTENSIONS.values())} or --format"
        )
    return fmt


def check_output(output: Path, force: bool) -> None:
    """Refuse to clobber, and prove the folder is writable before any work starts.

    A split output's playlist is written after its chapter files, so it is what
    "the output exists" means there too: chapter files without a playlist are an
    interrupted run's, which a rerun replaces without ``--force``.
    """
    if output.exists() and not force:
        raise OutputError(f"{output} exists; use --force to replace it")
    if output.exists() and output.is_dir():
        raise OutputError(f"{output} is a folder")
    problem = folder_problem(output.parent)
    if problem:
        raise OutputError(f"cannot write to {output.parent}: {problem}")


def folder_problem(folder: Path) -> str:
    """'' when ``folder`` (created if needed) takes a new file, else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".voicekit-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def write_atomic(
    output: Path, fmt: str, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
) -> None:
    """Encode into a temp file beside ``output``, then rename: the file is whole or absent."""
    encoder = ENCODERS.get(fmt)
    if encoder is None:
        _load_encoders()
        encoder = ENCODERS.get(fmt)
    if encoder is None:
        raise OutputError(f"no encoder for {fmt}")
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{output.name}.", suffix=f".partial{output.suffix}", dir=output.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        encoder(tmp, timeline, pcm, options)
        tmp.chmod(0o666 & ~_umask())  # mkstemp makes files private; outputs are not
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def _load_encoders() -> None:
    """The ffmpeg-based and split encoders register themselves on import (kept lazy)."""
    with contextlib.suppress(ImportError):
        import voicekit.formats.chapter_files
        import voicekit.formats.encoders  # noqa: F401
