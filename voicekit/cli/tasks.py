"""One input of a ``synth`` command and where it goes; its row in the batch summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from voicekit.errors import VoicekitError
from voicekit.synth.job import completed_output
from voicekit.synth.options import RunOptions, default_job_dir
from voicekit.text.model import Book


@dataclass
class BookTask:
    source: str
    output: Path
    fmt: str
    split: bool = False
    """One file per chapter: ``output`` is then the playlist inside the folder."""
    book: Book | None = None
    error: VoicekitError | None = None


def task_row(task: BookTask, run: RunOptions) -> dict[str, Any]:
    """The task's row in the summary; with a ``status`` already when it needs no work:
    it failed the up-front check, or its output exists and ``--force`` was not given."""
    row: dict[str, Any] = {"input": task.source, "output": str(task.output)}
    if task.error is not None:
        row.update(status="failed", error=task.error.message)
    elif (
        task.output.exists()
        and not run.force
        # a run stopped after writing this output: synth.run tidies up and says so
        and completed_output(default_job_dir(task.output), task.output) is None
    ):
        row.update(status="kept", error="output exists (use --force to replace)")
    return row
