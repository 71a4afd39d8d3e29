"""--help speaks in metavars, defaults and choices, never in Python types."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from voicekit.cli.main import app
from voicekit.settings import SETTING_FIELDS, SynthSettings

COMMANDS = [
    [],  # voicekit --help itself
    ["synth"],
    ["convert"],
    ["bench"],
    ["doctor"],
    ["gpu"],
    ["profiles"],
    ["profiles", "list"],
    ["profiles", "show"],
    ["profiles", "save"],
    ["profiles", "path"],
]
# What typer prints when a parameter has no metavar: the annotation's Python type.
PYTHON_TYPES = re.compile(
    r"<(?:bool|int|float|str|path|list|dict|tuple|Path|NoneType)\b|NoneType|Optional\[|\| None"
)


def _help(command: list[str]) -> str:
    result = CliRunner(env={"COLUMNS": "200"}).invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: "-".join(["voicekit", *c]))
def test_help_shows_no_python_types(command: list[str]) -> None:
    """Regression: --help showed <bool> on flags, <list[str]> and {inputs}... for arguments."""
    text = _help(command)
    assert not PYTHON_TYPES.findall(text), PYTHON_TYPES.findall(text)
    usage = next(line for line in text.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage


def test_synth_help_names_values_defaults_units_and_choices() -> None:
    text = _help(["synth"])
    assert re.search(r"synth \[OPTIONS\] FILE\.\.\.", text)
    defaults = SynthSettings()
    for flag, metavar, default in [
        ("--bucket-size", "N", f"{defaults.bucket_size} sentences"),
        ("--sentence-silence", "SECONDS", f"{defaults.sentence_silence} s"),
        ("--paragraph-silence", "SECONDS", f"{defaults.paragraph_silence} s"),
        ("--chapter-silence", "SECONDS", f"{defaults.chapter_silence} s"),
        ("--precision", "fp32|fp16|bf16", defaults.precision),
        ("--backend", "auto|ort|torch", defaults.backend),
        ("--urls", "read|host|skip", defaults.urls),
        ("--chunk-frames", "FRAMES", f"{defaults.chunk_frames} latent frames"),
    ]:
        line = next(line for line in text.splitlines() if f" {flag} " in line)
        assert metavar in line, line
        assert f"[default: {default}]" in line, line
    bitrate = next(line for line in text.splitlines() if "--bitrate" in line)
    assert "KBPS" in bitrate and "[default: 64k for m4b" in bitrate and "(kb/s)" in bitrate
    assert "--speak-titles" in text and "[default: on]" in text


def test_every_setting_with_a_default_shows_it() -> None:
    text = " ".join(_help(["synth"]).split())
    for name, field in SETTING_FIELDS.items():
        if field.default is not None and name != "code_note":
            flag = f"--{name.replace('_', '-')}"
            tail = text.split(f"│ {flag} ", 1)[1][:400]  # the option's row, not a mention
            assert "[default:" in tail, name


def test_arguments_still_parse_with_their_metavars(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["profiles", "path", "cpu"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith("cpu.toml")
