"""What every command shares: the stderr console and the error-to-exit-code boundary."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from voicekit.errors import VoicekitError

F = TypeVar("F", bound=Callable[..., Any])

INTERRUPTED = 130


def err_console() -> Console:
    # Built per call so CliRunner's swapped streams are honoured in tests.
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def out_console() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def print_error(message: str, hint: str | None = None) -> None:
    line = f"error: {message}" + (f" ({hint})" if hint else "")
    err_console().print(line, markup=False)


def handles_errors(func: F) -> F:
    """Turn VoicekitError into one line on stderr and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except VoicekitError as exc:
            print_error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print_error("interrupted; finished work is kept, run the same command to resume")
            raise typer.Exit(INTERRUPTED) from None
        except Exception as exc:
            if os.environ.get("VOICEKIT_DEBUG"):
                raise
            print_error(f"unexpected {type(exc).__name__}: {exc}",
                        "set VOICEKIT_DEBUG=1 for the traceback, and please report it")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
