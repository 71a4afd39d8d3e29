"""``voicekit bench``: speed and quality of each backend variant on this machine."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from voicekit.backends.voices import Voice, load_voice
from voicekit.cli import options as o
from voicekit.cli.common import err_console, handles_errors, out_console
from voicekit.diagnostics.bench import (
    DEFAULT_SECONDS,
    STAGES,
    VARIANTS,
    BenchReport,
    bench_sentences,
    run_bench,
)
from voicekit.diagnostics.pipeline_bench import run_pipeline_bench
from voicekit.errors import InputError
from voicekit.formats.output import EXTENSIONS
from voicekit.profiles import resolve_settings

app = typer.Typer()


@app.command("bench", cls=o.Command)
@handles_errors
def bench(
    seconds: Annotated[
        float,
        typer.Option(
            "--seconds",
            "-s",
            metavar="SECONDS",
            help=o.with_default("Seconds of audio each variant speaks.", f"{DEFAULT_SECONDS:g} s"),
            show_default=False,
        ),
    ] = DEFAULT_SECONDS,
    device: Annotated[
        str,
        typer.Option(
            "--device",
            metavar="auto|cpu|cuda|cuda:N",
            help="auto: the first CUDA GPU torch sees, else the CPU.",
        ),
    ] = "auto",
    variants: Annotated[
        str | None,
        typer.Option(
            "--variants",
            metavar="NAMES",
            help=f"Comma-separated, from: {', '.join(VARIANTS)}. "
            "Default: ort, torch, torch-chunked (plus the CUDA ones on a GPU).",
            show_default=False,
        ),
    ] = None,
    stage: Annotated[
        str,
        typer.Option(
            "--stage",
            metavar="vocoder|pipeline|all",
            help="What to time: the vocoder alone, the whole pipeline, or both.",
        ),
    ] = "all",
    against_piper: Annotated[
        bool,
        typer.Option("--against-piper", help="Also time the Piper CLI on the same voice and text."),
    ] = False,
    threads: Annotated[
        int,
        typer.Option("--threads", metavar="N", help="CPU threads (0: the physical cores)."),
    ] = 0,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            metavar="NAME",
            help="Run the torch variants with a profile's engine settings (e.g. gpu-large).",
            show_default=False,
        ),
    ] = None,
    voice: Annotated[
        str | None,
        typer.Option(
            "--voice",
            metavar="FILE",
            help="A Piper .onnx voice (default: the bundled one).",
            show_default=False,
        ),
    ] = None,
    pipeline: Annotated[
        bool,
        typer.Option(
            "--pipeline",
            help="Time a whole synth run of the bench text instead (text, phonemize, network, "
            "checkpoints, encode, join): where its time goes, stage by stage.",
        ),
    ] = False,
    fmt: Annotated[
        str,
        typer.Option("--format", "-f", metavar="FORMAT", help="With --pipeline: the output."),
    ] = "m4b",
    json_out: Annotated[
        bool, typer.Option("--json", help='Print {"device", "variants": [...]} on stdout.')
    ] = False,
) -> None:
    """Measure onnxruntime vs our torch engine (and its GPU features): speed, quality, memory."""
    if pipeline:
        _pipeline(load_voice(voice), seconds, device, threads, profile, fmt, json_out)
        return
    names = [n.strip() for n in variants.split(",") if n.strip()] if variants else None
    stages = STAGES if stage == "all" else (stage,)
    console = err_console()

    def progress(message: str) -> None:
        if not json_out:
            console.print(f"[dim]{escape(message)}[/]")

    report = run_bench(
        load_voice(voice),
        device=device,
        seconds=seconds,
        variants=names,
        stages=stages,
        against_piper=against_piper,
        threads=threads,
        progress=progress,
        profile=profile,
    )
    if json_out:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        out_console().print(_table(report))
        out_console().print(conclusion(report), markup=False)


def _pipeline(
    voice: Voice,
    seconds: float,
    device: str,
    threads: int,
    profile: str | None,
    fmt: str,
    json_out: bool,
) -> None:
    """``--pipeline``: one synth run of the bench text with the profile's settings."""
    if fmt not in EXTENSIONS:
        raise InputError(f"unknown format '{fmt}'; choose from {', '.join(EXTENSIONS)}")
    resolved = resolve_settings({"device": device, "threads": threads}, profile)
    if not json_out:
        err_console().print(f"[dim]synth of about {seconds:g} s of the bench text to {fmt}[/]")
    found = run_pipeline_bench(resolved, bench_sentences(voice), seconds=seconds, fmt=fmt)
    if json_out:
        typer.echo(json.dumps({"pipeline": found.to_dict()}, indent=2))
        return
    table = Table(title=f"synth to {fmt} on {found.device} ({found.backend})")
    table.add_column("stage")
    table.add_column("wall s", justify="right")
    table.add_column("busy s", justify="right")
    for name, spent in found.stages.items():
        table.add_row(name, f"{spent:.2f}", _num(found.stage_busy.get(name), ".2f"))
    out_console().print(table)
    out_console().print(
        f"{found.audio_seconds:.1f} s of audio in {found.wall_seconds:.1f} s: "
        f"{found.x_realtime:,.1f}x real time, peak {found.peak_rss_mb:,.0f} MB",
        markup=False,
    )


def conclusion(report: BenchReport) -> str:
    """One line: the fastest variant here, and what synth's auto settings use."""
    auto = f"`synth --device auto` uses {report.auto}" if report.auto else ""
    best = next(
        (v for v in report.variants if v.name == report.fastest and v.stage != "vocoder"),
        next((v for v in report.variants if v.name == report.fastest), None),
    )
    if best is None:
        return f"nothing was measured; {auto}".rstrip("; ")
    line = (
        f"fastest here: {best.name} ({best.stage}, {best.x_realtime:,.1f}x real time, "
        f"{best.speedup:.2f}x ort); {auto}"
    )
    if report.busy:
        line += " (other processes took CPU time during some timings: run again when idle)"
    return line


def _num(value: float | None, fmt: str, none: str = "-") -> str:
    return none if value is None else format(value, fmt)


def _table(report: BenchReport) -> Table:
    rf = report.receptive_field_frames
    caption = (
        f"{report.audio_seconds:.1f} s of audio, {report.utterances} sentences, "
        f"{report.threads} CPU threads; reference: {report.reference}"
        + (
            f"; decoder receptive field ±{rf} frames (overlap {report.overlap_frames})"
            if rf
            else ""
        )
    )
    if report.skipped:
        caption += "\nskipped: " + "; ".join(
            f"{s['name']} ({s['stage']}): {s['reason']}" for s in report.skipped
        )
    kinds = {v.mem_kind for v in report.variants}
    memory = f"peak {_MEMORY.get(next(iter(kinds)), 'memory')}" if len(kinds) == 1 else "peak"
    table = Table(title=f"voicekit bench — {report.device}", caption=caption)
    for column in ("variant", "stage", "× real time", "vs ort", "SNR dB", "max |diff|"):
        left = column in ("variant", "stage")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    table.add_column(f"{memory} MB", justify="right", no_wrap=True)
    for v in report.variants:
        table.add_row(
            v.name,
            v.stage,
            f"{v.x_realtime:,.1f}",
            f"{v.speedup:.2f}×",
            _num(v.snr_db, ".1f", "exact" if v.max_abs_diff == 0 else "-"),
            _num(v.max_abs_diff, ".2g"),
            f"{v.peak_mem_mb:,.0f}" + (f" {_MEMORY.get(v.mem_kind, '')}" if len(kinds) > 1 else ""),
        )
    return table


# What the peak column measured, by VariantResult.mem_kind.
_MEMORY = {"rss": "RSS", "gpu": "GPU (torch)", "gpu-nvml": "GPU (driver)"}
