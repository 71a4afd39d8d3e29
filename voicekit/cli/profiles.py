"""``voicekit profiles``: list, show and save settings presets."""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from voicekit.cli import options as o
from voicekit.cli.common import err_console, handles_errors
from voicekit.errors import InputError
from voicekit.profiles import load_profile, profile_entries, save_profile, user_dir
from voicekit.settings import SynthSettings, field_doc

app = typer.Typer(
    cls=o.Group,
    help="Settings presets: built-in ones and your own (flags > profile > defaults).",
    no_args_is_help=True,
)

JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]


def _console() -> Console:
    return Console(file=sys.stdout, highlight=False)


@app.command("list", cls=o.Command)
@handles_errors
def list_(json_out: JsonOut = False) -> None:
    """Every profile: name, where it comes from, what it is for."""
    entries = profile_entries()
    if json_out:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": e.name,
                        "path": str(e.path),
                        "builtin": e.builtin,
                        "overrides_builtin": bool(e.profile and e.profile.overrides_builtin),
                        "description": e.profile.description if e.profile else None,
                        "values": e.profile.values if e.profile else None,
                        "error": e.error,
                    }
                    for e in entries
                ],
                indent=2,
            )
        )
        return
    table = Table(title="voicekit profiles")
    table.add_column("name", style="bold")
    table.add_column("source")
    table.add_column("description", overflow="fold")
    for e in entries:
        source = "built-in" if e.builtin else "user"
        if e.profile and e.profile.overrides_builtin:
            source += " (replaces built-in)"
        if e.profile:
            text = escape(e.profile.description)
        else:
            text = f"[red]broken: {escape(e.error or '')}[/]"
        table.add_row(escape(e.name), source, text)
    _console().print(table)
    _console().print(f"your profiles: {user_dir()}", markup=False)


@app.command("show", cls=o.Command)
@handles_errors
def show(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Profile name (voicekit profiles list).")
    ],
    json_out: JsonOut = False,
) -> None:
    """Every setting as the profile resolves it (over the defaults), and which it sets."""
    profile = load_profile(name)
    resolved = dataclasses.asdict(SynthSettings(**profile.values))
    if json_out:
        typer.echo(
            json.dumps(
                {
                    "name": profile.name,
                    "path": str(profile.path),
                    "builtin": profile.builtin,
                    "description": profile.description,
                    "values": profile.values,
                    "resolved": resolved,
                },
                indent=2,
            )
        )
        return
    console = _console()
    source = "built-in" if profile.builtin else "user"
    console.print(f"[bold]{escape(profile.name)}[/] ({source}, {escape(str(profile.path))})")
    if profile.description:
        console.print(profile.description, markup=False)
    table = Table(show_header=True)
    table.add_column("setting", no_wrap=True)
    table.add_column("value", no_wrap=True)
    table.add_column("from", no_wrap=True)
    table.add_column("meaning", overflow="fold")
    for key, value in resolved.items():  # settings order, not file order: easier to compare
        mine = key in profile.values
        table.add_row(
            key,
            escape(_toml_value(value)),
            "profile" if mine else "default",
            field_doc(key).replace("``", ""),
            style="bold" if mine else "dim",
        )
    console.print(table)
    sets = len(profile.values)
    console.print(
        f"{sets} setting{'s' if sets != 1 else ''} from the profile (bold), the rest defaults; "
        "flags given to synth override both",
        markup=False,
    )


def _toml_value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value) if isinstance(value, str) else str(value)


@app.command("save", cls=o.Command)
@handles_errors
@o.with_settings_flags
def save(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Name of the profile to write.")],
    description: Annotated[
        str | None,
        typer.Option(
            "--description",
            "-d",
            metavar="TEXT",
            help="One line on what the profile is for.",
            show_default=False,
        ),
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="PROFILE",
            help="Start from this profile's settings; the flags given override them.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a user profile of the same name.")
    ] = False,
    **flags: Any,
) -> None:
    """Save the settings flags given (the same as synth's) as a user profile."""
    flags = o.settings_flags(flags)
    values: dict[str, Any] = {}
    text = description
    if from_ is not None:
        base = load_profile(from_)
        values.update(base.values)
        if text is None:
            text = f"from {from_}: {base.description}" if base.description else f"from {from_}"
    values.update(flags)
    if not values:
        raise InputError(
            "nothing to save: give settings flags (e.g. --batch-size 8) or --from PROFILE"
        )
    path = save_profile(name, values, text or "", force=force)
    note = ""
    if load_profile(name).overrides_builtin:
        note = f" (it replaces the built-in '{name}' for you)"
    err_console().print(f"saved profile '{name}' to {path}{note}", markup=False)


@app.command("path", cls=o.Command)
@handles_errors
def path(
    name: Annotated[
        str | None,
        typer.Argument(
            metavar="NAME",
            help="A profile: print its file instead of the folder.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the folder of your profiles (or one profile's file)."""
    typer.echo(str(load_profile(name).path if name else user_dir()))
