"""``voicekit bench``: speed and quality of each backend variant on this machine."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from voicekit.backends.voices import load_voice
from voicekit.cli.common import err_console, handles_errors, out_console
from voicekit.diagnostics.bench import DEFAULT_SECONDS, STAGES, VARIANTS, BenchReport, run_bench

app = typer.Typer()


@app.command("bench")
@handles_errors
def bench(
    seconds: Annotated[
        float, typer.Option("--seconds", "-s", help="Seconds of audio each variant speaks.")
    ] = DEFAULT_SECONDS,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    variants: Annotated[
        str | None,
        typer.Option(
            "--variants",
            help=f"Comma-separated, from: {', '.join(VARIANTS)}. "
            "Default: ort, torch, torch-chunked (plus the CUDA ones on a GPU).",
            show_default=False,
        ),
    ] = None,
    stage: Annotated[str, typer.Option("--stage", help="vocoder, pipeline or all.")] = "all",
    against_piper: Annotated[
        bool,
        typer.Option("--against-piper", help="Also time the Piper CLI on the same voice and text."),
    ] = False,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads (0: physical cores).")] = 0,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            help="Run the torch variants with a profile's engine settings (e.g. gpu-large).",
            show_default=False,
        ),
    ] = None,
    voice: Annotated[
        str | None,
        typer.Option(
            "--voice", help="A Piper .onnx voice (default: the bundled one).", show_default=False
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help='Print {"device", "variants": [...]} on stdout.')
    ] = False,
) -> None:
    """Measure onnxruntime vs our torch engine (and its GPU features): speed, quality, memory."""
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
    table = Table(title=f"voicekit bench — {report.device}", caption=caption)
    for column in ("variant", "stage", "× realtime", "speedup", "SNR dB", "max |diff|", "peak MB"):
        table.add_column(column, justify="left" if column in ("variant", "stage") else "right")
    for v in report.variants:
        table.add_row(
            v.name,
            v.stage,
            f"{v.x_realtime:,.1f}",
            f"{v.speedup:.2f}×",
            _num(v.snr_db, ".1f", "exact" if v.max_abs_diff == 0 else "-"),
            _num(v.max_abs_diff, ".2g"),
            f"{v.peak_mem_mb:,.0f} {v.mem_kind}",
        )
    return table
