"""``voicekit doctor``: can this machine synthesise, and fast? What to fix?"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from voicekit.cli import options as o
from voicekit.cli.common import err_console, handles_errors
from voicekit.diagnostics.doctor import CHECKS, Check, overall_ok, report, run_checks

app = typer.Typer()

_STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


@app.command("doctor", cls=o.Command)
@handles_errors
def doctor(
    json_out: Annotated[
        bool, typer.Option("--json", help='Print {"ok": ..., "checks": [...]} on stdout.')
    ] = False,
) -> None:
    """Check Python, packages, onnxruntime/torch CUDA, driver, ffmpeg, the voice and disks.

    Exits 0 when synthesis works here (GPU problems are warnings with their fix),
    1 when it cannot.
    """
    checks = _run_with_status()
    ok = overall_ok(checks)
    if json_out:
        typer.echo(json.dumps(report(checks), indent=2))
    else:
        _print_table(checks, ok)
    raise typer.Exit(0 if ok else 1)


def _run_with_status() -> list[Check]:
    console = err_console()
    if not console.is_terminal:
        return run_checks(CHECKS)
    with console.status("checking") as status:
        return run_checks(
            CHECKS,
            before=lambda fn: status.update(
                f"checking {fn.__name__.removeprefix('check_').replace('_', ' ')}"
            ),
        )


def _print_table(checks: list[Check], ok: bool) -> None:
    console = Console(file=sys.stdout, highlight=False)
    table = Table(title="voicekit doctor", show_lines=True)
    table.add_column("status", no_wrap=True)
    table.add_column("check", style="bold", no_wrap=True)
    table.add_column("detail and fix", overflow="fold")
    for c in checks:
        cell = Text(c.detail)
        if c.fix:  # the fix under the finding, in the colour of its status
            cell.append(f"\nfix: {c.fix}", style="yellow" if c.status == "warn" else "red")
        table.add_row(_STYLE[c.status], c.name, cell)
    console.print(table)
    warnings = sum(c.status == "warn" for c in checks)
    failed = [c.name for c in checks if c.status == "fail"]
    if ok:
        extra = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
        console.print(f"[green]synthesis works on this machine[/]{extra}")
    else:
        console.print(f"[bold red]synthesis cannot work here[/]: fix {', '.join(failed)}")
