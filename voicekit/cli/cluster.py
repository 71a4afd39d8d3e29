"""``voicekit synth ... --cluster ADDRESS``: the batch handed to Ray, drawn as it runs.

The work is ``voicekit.cluster``'s; this module turns the CLI's tasks into book units,
shows the cluster's progress (the live panel, plain lines, or nothing until the JSON
summary) and prints the summary table the local batch prints, with each book's node.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from voicekit.cli.common import err_console, out_console, print_error
from voicekit.cli.render import hms
from voicekit.cli.tasks import BookTask, batch_table, task_row
from voicekit.cluster.connect import connect, disconnect, import_ray
from voicekit.cluster.runner import BookUnit, ClusterRunner, ClusterState
from voicekit.settings import SynthSettings
from voicekit.synth.options import RunOptions

if TYPE_CHECKING:
    from voicekit.cli.synth import ViewMode


def run_on_cluster(address: str, settings: SynthSettings, tasks: list[BookTask],
                   run: RunOptions, mode: ViewMode) -> None:  # fmt: skip
    """Every book of ``tasks`` made on the cluster; exit 1 if any failed."""
    import_ray()  # the missing extra is named before anything else happens
    rows: dict[str, dict[str, Any]] = {}
    units: list[BookUnit] = []
    for task in tasks:  # inputs that failed the up-front check are reported before any work
        row = task_row(task, run)
        if task.error is not None:
            print_error(f"{task.source}: {task.error.message}", task.error.hint)
        elif "status" not in row:
            assert task.book is not None
            output = Path(os.path.abspath(task.output))  # workers have other working folders
            job = Path(os.path.abspath(run.job_dir)) if run.job_dir else None
            readalong = Path(os.path.abspath(run.readalong)) if run.readalong else None
            options = RunOptions(fmt=task.fmt, split=task.split, job_dir=job,
                                 restart=run.restart, keep_work=run.keep_work,
                                 force=run.force, captions=run.captions,
                                 readalong=readalong)  # fmt: skip
            units.append(BookUnit(task.source, task.book, output, options))
        rows[task.source] = row
    # the workers' settings name no cluster: the job manifests match a local run's
    runner = ClusterRunner(settings.replace(cluster=None))
    started = connect(address)
    try:
        state = _show(runner.run(units), mode)
    finally:
        disconnect(started)
    for result in state.rows:
        rows[result["input"]].update({k: v for k, v in result.items() if k != "output"})
    _summary(list(rows.values()), state, mode)


def _show(states: Any, mode: ViewMode) -> ClusterState:
    """Draw each state as it comes; the last one."""
    console = Console(file=sys.stderr, highlight=False)
    state: ClusterState | None = None
    if mode.quiet or mode.json:
        for latest in states:  # nothing is drawn: only the last state counts
            state = latest
    elif sys.stdout.isatty() and console.is_terminal:
        with Live(Text("starting the cluster's workers"), console=console,
                  refresh_per_second=2) as live:  # fmt: skip
            for state in states:
                live.update(_panel(state))
    else:
        last = 0.0
        for state in states:
            if state.finished or time.monotonic() - last >= 5:
                last = time.monotonic()
                console.print(_line(state), markup=False, soft_wrap=True)
    assert state is not None
    return state


def _line(state: ClusterState) -> str:
    t = state.totals()
    speed = f" {t['x_realtime']}x real time" if t["x_realtime"] else ""
    return (
        f"cluster: {t['done']}/{t['books']} books done, {t['in_flight']} in flight, "
        f"{t['failed']} failed; {t['buckets_made']} buckets made; audio {hms(t['audio_seconds'])}"
        f" in {hms(t['wall_seconds'])}{speed}; {t['workers']} workers"
        + (
            # a unit: a whole book, or one of a split book's ranges (or its plan, its finish)
            f"; {t['retries']} unit{'s' if t['retries'] != 1 else ''} retried"
            if t["retries"]
            else ""
        )
    )


def _panel(state: ClusterState) -> Panel:
    table = Table(expand=False, box=None, padding=(0, 2))
    for column in ("worker", "device", "book", "buckets", "books", "audio", "gpu"):
        table.add_column(column)
    for w in state.workers:
        now = w.get("now") or {}
        gpu = now.get("peak_gpu_mb")
        book = str(now.get("book", "-")) + (f" [range {now['range']}]" if now.get("range") else "")
        table.add_row(
            Text(f"{w.get('host', '?')} {str(w.get('node', ''))[:8]} pid {w.get('pid', '')}"),
            f"{w.get('device', '')} {w.get('backend', '')}",
            Text(book, overflow="ellipsis", no_wrap=True),
            f"{now.get('buckets_done', 0)}/{now.get('buckets_total', 0)}" if now else "",
            str(w.get("books", 0)),
            hms(w.get("audio_seconds", 0.0)),
            f"{gpu:.0f} MB" if gpu else "",
        )
    return Panel(Group(Text(_line(state)), table), title="voicekit cluster",
                 border_style="cyan")  # fmt: skip


def _summary(rows: list[dict[str, Any]], state: ClusterState, mode: ViewMode) -> None:
    failed = [r for r in rows if r["status"] == "failed"]
    for r in state.rows:
        if r["status"] == "failed":
            print_error(f"{r['input']}: {r.get('error', 'failed')}")
        elif not mode.quiet:  # a local run's view prints them as they come (stderr)
            for warning in r.get("warnings", []):
                said = warning.removeprefix("warning: ")
                err_console().print(f"warning: {r['input']}: {said}", markup=False)
    if mode.json:
        workers = [{k: v for k, v in w.items() if k != "now"} for w in state.workers]
        payload = {"ok": not failed, "books": rows, "cluster": state.totals(),
                   "workers": workers}  # fmt: skip
        out_console().print_json(json.dumps(payload))
    elif not mode.quiet:
        table = batch_table(rows, "voicekit batch (cluster)", nodes=True)
        err_console().print(table)
    if failed:
        raise typer.Exit(1)
