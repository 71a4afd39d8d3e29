"""How one book's run writes its output: ``RunOptions``, and where its job folder goes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from voicekit.formats.encoders import EncodeOptions


@dataclass(frozen=True)
class RunOptions:
    """How one book's run writes its output and treats its job folder."""

    fmt: str = "wav"
    split: bool = False
    """One file per chapter; the output path is then their playlist."""
    job_dir: Path | None = None
    """The job folder; default: beside the output (``<output>.voicekit-job``)."""
    restart: bool = False
    """Discard the job's finished buckets first."""
    keep_work: bool = False
    """Keep the job folder after success (a re-render then costs only encoding)."""
    force: bool = False
    """Replace an existing output."""
    encode: EncodeOptions | None = None
    """Tags, cover and bitrate; default: the book's own, from the manifest."""
    captions: tuple[str, ...] = ()
    """Caption files to write beside the output: srt, vtt (synth/captions.py)."""
    readalong: Path | None = None
    """A read-along EPUB 3 (Media Overlays) to write (synth/readalong.py)."""
    readalong_source: bytes | None = None
    """The source EPUB's bytes for the read-along, where this process may not see
    ``book.source`` (a cluster worker: the driver reads and sends them); None: read it
    from ``book.source``."""


def default_job_dir(output: Path) -> Path:
    return output.with_name(output.name + ".voicekit-job")
