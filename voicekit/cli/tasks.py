"""One input of a ``synth`` command and where it goes; its row in the batch summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from voicekit.cli.render import hms
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


def batch_table(rows: list[dict[str, Any]], title: str, *, nodes: bool = False) -> Table:
    """The summary of a batch, one row per input (``nodes``: where each was made)."""
    table = Table(title=title)
    columns = ("input", "status", "audio", "time", *(("node",) if nodes else ()), "note")
    for column in columns:
        table.add_column(column)
    for r in rows:
        style = {"done": "green", "failed": "red"}.get(r["status"], "yellow")
        cells: list[Any] = [
            Text(r["input"]),
            Text(r["status"], style),
            hms(r.get("audio_seconds")) if "audio_seconds" in r else "",
            hms(r.get("wall_seconds")) if "wall_seconds" in r else "",
        ]
        if nodes:  # a book made in ranges: where it was finished, and how many nodes in all
            more = len(r.get("nodes") or []) - 1
            where = f"{r.get('host', '')} {str(r.get('node', ''))[:8]}".strip()
            cells.append(Text(where + (f" (+{more} more)" if more > 0 else "")))
        table.add_row(*cells, Text(r.get("error", "")))
    return table
