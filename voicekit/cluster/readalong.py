"""A book's read-along EPUB (``--readalong``) made on the cluster, as a local run makes it.

The read-along of an EPUB is the source EPUB's own pages with each sentence in a span
(synth/readalong.py), so the worker that writes it needs the source's bytes; a worker
may not see the driver's input (only the output folder is probed), so the driver reads
them and sends them with the book. Only with the runs that write the book: a plan or a
range writes no read-along.

Where it is written: a worker that sees the output folder writes it in place when it
lies in that folder (or below it); otherwise (no shared storage, or a read-along kept
elsewhere, which a worker on another node would write on its own disk) the worker
makes it in node-local scratch and sends it back, and the driver writes it, as it
writes a book's files made without shared storage.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import replace
from pathlib import Path

from voicekit.cluster.units import BookUnit
from voicekit.errors import OutputError, os_error
from voicekit.synth.companions import check_companions
from voicekit.synth.job import completed_output
from voicekit.synth.options import RunOptions
from voicekit.synth.readalong import source_epub
from voicekit.system.fsutil import write_bytes

SCRATCH = "readalong"
"""The folder under a book's node-local scratch where a read-along sent back is made."""


def prepare(unit: BookUnit) -> None:
    """Before any work: the captions' and read-along's paths checked as a local run checks
    them (a worker that makes them in scratch cannot, and the driver would then replace
    the user's files), the read-along's made absolute, and the source EPUB's bytes read."""
    opts = unit.options
    target = Path(os.path.abspath(opts.readalong)) if opts.readalong is not None else None
    source = unit.book.source
    # a run stopped after writing this output only tidies up: a local run checks nothing
    if opts.force or opts.restart or completed_output(unit.job_dir, unit.output) is None:
        check_companions(unit.output, opts.captions, target, split=opts.split,
                         force=opts.force, protect=(source,) if source else ())  # fmt: skip
    if target is not None:
        unit.options = replace(opts, readalong=target, readalong_source=_source_bytes(unit))


def _source_bytes(unit: BookUnit) -> bytes | None:
    source = source_epub(unit.book)
    if source is None:
        return None  # text or Markdown: the read-along is built from the text
    try:
        return source.read_bytes()
    except OSError:
        # as a local run that cannot read it back: the text-built read-along, and a warning
        return b""


def in_place(options: RunOptions, folder: Path) -> bool:
    """May a worker that sees ``folder`` (the probed output folder) write the read-along?"""
    return options.readalong is None or options.readalong.is_relative_to(folder)


def without_source(options: RunOptions) -> RunOptions:
    """``options`` for a unit that writes no read-along (a range): the EPUB stays here."""
    return replace(options, readalong_source=None) if options.readalong_source else options


def in_scratch(options: RunOptions, scratch: Path) -> tuple[RunOptions, Path]:
    """``options`` with the read-along made under ``scratch``, and where it will be."""
    assert options.readalong is not None
    target = scratch / SCRATCH / options.readalong.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)  # a lost try's, in voicekit's own scratch: ours to replace
    return replace(options, readalong=target), target


def take_back(made: Path) -> bytes:
    """The read-along made in scratch, to send back; its scratch folder gone."""
    data = made.read_bytes()
    shutil.rmtree(made.parent, ignore_errors=True)
    with contextlib.suppress(OSError):  # the book's scratch too, when nothing else is left
        made.parent.parent.rmdir()
    return data


def deliver(unit: BookUnit, data: bytes) -> int:
    """Write the read-along a worker sent back where it was asked for; its bytes."""
    target = unit.options.readalong
    assert target is not None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(target, data)
    except OSError as exc:
        raise os_error(exc, OutputError, f"cannot write the read-along EPUB {target}") from exc
    return len(data)
