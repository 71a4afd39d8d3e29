"""What the reliability tests share: a tiny book, the CLI in a subprocess, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from voicekit.cli.main import app

FAST = ["--device", "cpu", "--backend", "ort", "--sentence-silence", "0.1",
        "--paragraph-silence", "0.2", "--chapter-silence", "0.3"]
TEXT = "# One\n\nHello there. This is a test.\n\n# Two\n\nA second paragraph, and the end.\n"
REPO = Path(__file__).resolve().parents[2]


def write_text(path: Path, text: str = TEXT) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result, code: int, text: str) -> str:  # type: ignore[no-untyped-def]
    """The run failed with ``code`` and one ``error:`` line containing ``text``; that line."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr
    assert text in lines[0], lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m voicekit`` in a subprocess: this worktree first."""
    path = os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, **extra}


def cli_command(*args: object) -> list[str]:
    return [sys.executable, "-m", "voicekit", *(str(a) for a in args)]


def run_cli(*args: object, env: dict[str, str] | None = None, **kw: object
            ) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_command(*args), env=env or cli_env(), capture_output=True,
                          text=True, **kw)  # type: ignore[call-overload]
