"""``voicekit gpu``: every NVIDIA GPU's memory, load, temperature, power and processes."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from voicekit.cli import options as o
from voicekit.cli.common import handles_errors
from voicekit.errors import InputError
from voicekit.system.nvml import GpuStatus, Snapshot, snapshot, watch

app = typer.Typer()


@app.command("gpu", cls=o.Command)
@handles_errors
def gpu(
    watch_: Annotated[
        bool, typer.Option("--watch", "-w", help="Refresh until Ctrl-C (or --count refreshes).")
    ] = False,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            "-n",
            metavar="SECONDS",
            help=o.with_default("Seconds between refreshes with --watch.", "1 s"),
            show_default=False,
        ),
    ] = 1.0,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            metavar="N",
            help="Stop after this many refreshes (implies --watch).",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool,
        typer.Option(
            "--json",
            help='Print {"gpus": [...], "system": {...}}; one line per refresh with --watch.',
        ),
    ] = False,
) -> None:
    """GPUs (memory, utilisation, temperature, power, processes), RAM and CPU.

    Without an NVIDIA GPU or driver it says so and exits 0.
    """
    if interval <= 0:
        raise InputError(f"--interval {interval} must be above 0")
    if count is not None and count < 1:
        raise InputError(f"--count {count} must be at least 1")
    console = Console(file=sys.stdout, highlight=False)
    if not (watch_ or count is not None):
        snap = snapshot()
        if json_out:
            typer.echo(json.dumps(snap.to_dict(), indent=2))
        else:
            console.print(render(snap))
        return
    try:
        if json_out:
            for snap in watch(interval, count):
                typer.echo(json.dumps(snap.to_dict()))
        elif console.is_terminal:
            with Live(console=console, auto_refresh=False, transient=False) as live:
                for snap in watch(interval, count):
                    live.update(render(snap), refresh=True)
        else:  # a log or a pipe: one block per refresh, nothing redrawn
            for snap in watch(interval, count):
                console.print(render(snap))
    except KeyboardInterrupt:  # Ctrl-C is how --watch ends: not an error
        return


def _mb(value: float) -> str:
    return f"{value:,.0f}"


def _opt(value: float | None, unit: str, fmt: str = "{:.0f}") -> str:
    return "-" if value is None else fmt.format(value) + unit


def _index(g: GpuStatus) -> str:
    """NVML's index, and CUDA's where CUDA_VISIBLE_DEVICES makes them differ."""
    if g.cuda_index == g.index:
        return str(g.index)
    return f"{g.index} ({'hidden' if g.cuda_index is None else f'cuda:{g.cuda_index}'})"


def render(snap: Snapshot) -> Group:
    parts: list[Table | Text] = []
    if snap.gpus:
        title = f"NVIDIA driver {snap.driver or '?'}, CUDA {snap.cuda_driver or '?'}"
        table = Table(title=title, title_justify="left")
        for column, justify in (
            ("#", "right"),
            ("name", "left"),
            ("memory MB", "right"),
            ("util", "right"),
            ("temp", "right"),
            ("power", "right"),
            ("processes", "left"),
        ):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for g in snap.gpus:
            share = g.memory_fraction
            color = "red" if share > 0.9 else "yellow" if share > 0.7 else "green"
            memory = f"[{color}]{_mb(g.memory_used_mb)}[/] / {_mb(g.memory_total_mb)}"
            power = _opt(g.power_w, " W")
            if g.power_limit_w:
                power += f" / {g.power_limit_w:.0f}"
            procs = (
                "\n".join(
                    f"{p.pid} {escape(p.name)} "
                    + ("?" if p.used_mb is None else f"{_mb(p.used_mb)} MB")
                    for p in g.processes
                )
                or "[dim]none[/]"
            )
            table.add_row(
                _index(g),
                escape(g.name),
                memory,
                _opt(g.utilization_pct, "%"),
                _opt(g.temperature_c, " °C"),
                power,
                procs,
            )
        parts.append(table)
    else:
        parts.append(Text(f"no NVIDIA GPU: {snap.note}", style="yellow"))
    s = snap.system
    load = f" | load {' '.join(f'{x:.2f}' for x in s.load_average)}" if s.load_average else ""
    cores = (
        f"{s.cpu_physical} cores / {s.cpu_logical} threads"
        if s.cpu_physical
        else (f"{s.cpu_logical} threads")
    )
    parts.append(
        Text(
            f"RAM {_mb(s.ram_used_mb)} / {_mb(s.ram_total_mb)} MB ({s.ram_percent:.0f}%) | "
            f"CPU {s.cpu_percent:.0f}% of {cores}{load}"
        )
    )
    return Group(*parts)
