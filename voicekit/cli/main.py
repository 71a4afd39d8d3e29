"""The ``voicekit`` command: one Typer app per command module, joined here."""

from __future__ import annotations

import logging

import typer

from voicekit import __version__
from voicekit.cli import bench, convert, doctor, gpu, profiles, synth

app = typer.Typer(
    name="voicekit",
    help="Batch audiobook production with neural text-to-speech, on GPU and CPU.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(synth.app)
app.add_typer(convert.app)
app.add_typer(bench.app)
app.add_typer(doctor.app)
app.add_typer(gpu.app)
app.add_typer(profiles.app, name="profiles")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"voicekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Batch audiobook production with neural text-to-speech, on GPU and CPU."""


def main() -> None:
    # piper logs every unknown phoneme at WARNING; those are not the user's business.
    logging.getLogger("piper").setLevel(logging.ERROR)
    app()
