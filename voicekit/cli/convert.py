"""``voicekit convert``: re-encode audio or a finished job folder, with chapters, tags and cover."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from voicekit.cli import options as o
from voicekit.cli.common import err_console, handles_errors, out_console
from voicekit.cli.render import hms
from voicekit.formats.convert import convert as run_convert
from voicekit.formats.output import format_for
from voicekit.synth.assemble import open_source

app = typer.Typer()


@app.command("convert", cls=o.Command)
@handles_errors
def convert(
    source: Annotated[
        Path,
        typer.Argument(
            metavar="FILE|FOLDER",
            help="Audio file ffmpeg reads (wav, m4b, mp3, flac...), or a voicekit job folder.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Output file (a folder with --split-chapters). "
            "Default: beside the input, named after it.",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format",
            "-f",
            metavar="wav|flac|mp3|opus|m4b",
            help="Output format. Default: from -o's extension, else m4b.",
            show_default=False,
        ),
    ] = None,
    bitrate: o.Bitrate = None,
    loudness: Annotated[
        float | None,
        typer.Option(
            "--loudness",
            help="Integrated loudness target in LUFS, one gain for the whole file (0: off). "
            "Default: a job folder's own --loudness; a file's level as it is.",
            show_default=False,
        ),
    ] = None,
    true_peak: Annotated[
        float | None,
        typer.Option(
            "--true-peak",
            help="True-peak ceiling in dBTP with --loudness. Default: -3 (a job: its own).",
            show_default=False,
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--title", metavar="TEXT", help="Book title (replaces the source's).",
            show_default=False,
        ),
    ] = None,
    author: Annotated[
        list[str] | None,
        typer.Option(
            "--author",
            metavar="NAME",
            help="Author; repeat for several (replaces the source's).",
            show_default=False,
        ),
    ] = None,
    cover: Annotated[
        Path | None,
        typer.Option(
            "--cover",
            metavar="FILE",
            help="Cover image (JPEG or PNG; other formats are converted); at most 10000 "
            "pixels a side and 40 million in all.",
            show_default=False,
        ),
    ] = None,
    chapters_file: Annotated[
        Path | None,
        typer.Option(
            "--chapters-file",
            metavar="FILE",
            help="Chapters: lines '[H:]MM:SS[.mmm] Title', ffmpeg FFMETADATA, "
            "or JSON [{start, title}].",
            show_default=False,
        ),
    ] = None,
    split_chapters: Annotated[
        bool,
        typer.Option(
            "--split-chapters", help="One file per chapter in the output folder, plus a playlist."
        ),
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print a JSON summary on stdout.")
    ] = False,
) -> None:
    """Re-encode audio, or a synth job folder, into wav/flac/mp3/opus/m4b without re-synthesis."""
    # with --split-chapters -o is a folder, so its name says nothing about the format
    named = output if output is not None and not split_chapters else Path()
    fmt = format_for(named, format, default="m4b")
    result = run_convert(
        source,
        output,
        fmt,
        opener=open_source,
        force=force,
        bitrate=bitrate,
        title=title,
        authors=author,
        cover=cover,
        chapters_file=chapters_file,
        split=split_chapters,
        loudness=loudness,
        true_peak=true_peak,
    )
    if json_out:
        out_console().print_json(json.dumps(result.to_dict()))
    elif not quiet:
        parts = f", {len(result.files)} files" if split_chapters else ""
        err_console().print(
            f"[green]wrote[/] {escape(str(result.output))}: {hms(result.audio_seconds)} of audio, "
            f"{result.chapters} chapters{parts}",
            markup=True,
        )
