"""``voicekit check``: does an audiobook (ours or not) meet a retailer's audio rules?"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from voicekit.cli.common import handles_errors
from voicekit.diagnostics.check import STANDARDS, Report, check

app = typer.Typer()


@app.command("check")
@handles_errors
def check_command(
    target: Annotated[
        Path, typer.Argument(help="An audio file, or a folder of them (one per chapter).")
    ],
    standard: Annotated[
        str, typer.Option("--standard", help=f"The rules: {', '.join(STANDARDS)}.")
    ] = "acx",
    json_out: Annotated[
        bool, typer.Option("--json", help='Print {"ok": ..., "files": [...]} on stdout.')
    ] = False,
) -> None:
    """Measure audio against ACX's rules: 192 kb/s CBR MP3 at 44.1 kHz, RMS -23 to -18 dB,
    peaks at most -3 dB, noise floor at most -60 dB, 0.5-1 s of room tone at the head and
    1-5 s at the tail, at most 120 minutes a file, one channel layout for all files.

    Prints pass or fail per rule with the measured value and the fix. Exits 0 when every
    file passes, 1 when any rule fails.
    """
    report = check(target, standard)
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print(report)
    raise typer.Exit(0 if report.ok else 1)


def _print(report: Report) -> None:
    console = Console(file=sys.stdout, highlight=False)
    for file in report.files:
        table = Table(title=f"{file.path} ({report.standard})", show_lines=True)
        table.add_column("", no_wrap=True)
        table.add_column("rule", style="bold")
        table.add_column("measured (required) and fix", overflow="fold")
        for rule in file.rules:
            mark = "[green]pass[/]" if rule.ok else "[bold red]FAIL[/]"
            cell = Text(f"{rule.measured} ({rule.required})")
            if not rule.ok:  # the fix under the finding, as doctor prints it
                cell.append(f"\nfix: {rule.fix}", style="red")
            table.add_row(mark, rule.name, cell)
        console.print(table)
    failed = [f for f in report.files if not f.ok]
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(report.files)} file(s) fail[/] "
                      f"{report.standard.upper()}'s rules")  # fmt: skip
    else:
        console.print(f"[green]all {len(report.files)} file(s) pass[/] "
                      f"{report.standard.upper()}'s rules")  # fmt: skip
