"""What every command shares: the stderr console and the error-to-exit-code boundary.

Light to import (no Typer or Rich at module level): ``cli/main.py`` uses the interrupt
helpers before the commands are imported, so a Ctrl-C then reads the same as later.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from voicekit.errors import VoicekitError, os_error

if TYPE_CHECKING:
    from rich.console import Console

F = TypeVar("F", bound=Callable[..., Any])

INTERRUPTED = 130
TERMINATED = 143  # 128 + SIGTERM, what a shell reports for a process SIGTERM ended


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread as Ctrl-C is, so the same unwinding runs:
    finally blocks, the job lock released, temp files removed."""


def err_console() -> Console:
    from rich.console import Console

    # Built per call so CliRunner's swapped streams are honoured in tests.
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def out_console() -> Console:
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def print_error(message: str, hint: str | None = None) -> None:
    line = f"error: {message}" + (f" ({hint})" if hint else "")
    err_console().print(line, markup=False)


def interruption(exc: BaseException | None) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt behind ``exc``, if any, along the chain a traceback shows.

    An import cut short by Ctrl-C can surface as an ImportError raised while handling the
    KeyboardInterrupt, and Typer turns one that reaches it into ``Exit(130) from`` it.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return None


def report_interrupt(exc: KeyboardInterrupt) -> int:
    """One line on stderr for Ctrl-C or SIGTERM; the exit code to leave with."""
    if isinstance(exc, Terminated):
        what, code = "terminated", TERMINATED
    else:
        what, code = "interrupted", INTERRUPTED
    # A plain write, not Rich: this can run before Rich is imported, or while another
    # signal arrives, and must not fail itself.
    # Rich's Live swaps sys.stderr for a proxy that buffers for its panel; a Live cut
    # short by the interrupt may never flush it, so the line goes to the file behind it.
    stream = getattr(sys.stderr, "rich_proxied_file", sys.stderr)
    try:
        stream.write(f"error: {what}; finished work is kept, run the same command to resume\n")
        stream.flush()
    except (OSError, ValueError):  # stderr closed or gone: the exit code still says it
        pass
    return code


def _stray_os_error(exc: OSError) -> VoicekitError:
    """An OSError nothing deeper named: still what to free or fix, never "please report"."""
    error = os_error(exc, VoicekitError, "stopped by a system error")
    if error.hint is None:
        error.hint = "fix what the system names and run the same command again"
    return error


def handles_errors(func: F) -> F:
    """Turn VoicekitError into one line on stderr and its exit code; never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        import typer

        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except VoicekitError as exc:
            print_error(exc.message, exc.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            raise typer.Exit(report_interrupt(exc)) from None
        except Exception as exc:
            if (interrupt := interruption(exc)) is not None:
                raise typer.Exit(report_interrupt(interrupt)) from None
            if os.environ.get("VOICEKIT_DEBUG"):
                raise
            if isinstance(exc, OSError):
                error = _stray_os_error(exc)
                print_error(error.message, error.hint)
                raise typer.Exit(error.exit_code) from None
            print_error(f"unexpected {type(exc).__name__}: {exc}",
                        "set VOICEKIT_DEBUG=1 for the traceback, and please report it")
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]
