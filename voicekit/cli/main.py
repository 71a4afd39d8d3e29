"""The ``voicekit`` command: one Typer app per command module, joined here.

Light to import: the console script imports this module before ``main()`` runs, so a
Ctrl-C in the first half second would otherwise land in Typer's or numpy's import and
print a traceback. The commands are imported inside ``main()``, under its interrupt
handling; ``from voicekit.cli.main import app`` still works (it builds the app then).
"""

from __future__ import annotations

import contextlib
import functools
import signal
import sys
import threading
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from voicekit.cli.common import (
    INTERRUPTED,
    TERMINATED,
    Terminated,
    interruption,
    report_interrupt,
)

if TYPE_CHECKING:
    import typer


@functools.cache
def build_app() -> typer.Typer:
    """The Typer app with every command: the heavy imports (Typer, Rich, numpy) happen here."""
    import typer

    from voicekit import __version__
    from voicekit.cli import bench, check, convert, doctor, gpu, profiles, synth
    from voicekit.cli.options import Group

    app = typer.Typer(
        name="voicekit",
        cls=Group,
        help="Batch audiobook production with neural text-to-speech, on GPU and CPU.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(synth.app)
    app.add_typer(convert.app)
    app.add_typer(bench.app)
    app.add_typer(doctor.app)
    app.add_typer(check.app)
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

    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return build_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def _thread_interrupted(args: threading.ExceptHookArgs) -> None:
    """A KeyboardInterrupt in a worker thread stops the run as one in the main thread does."""
    if args.exc_type is not None and issubclass(args.exc_type, KeyboardInterrupt):
        import _thread

        _thread.interrupt_main()  # the main thread unwinds, cleans up and reports it once
        return
    sys.__excepthook__(args.exc_type, args.exc_value, args.exc_traceback)  # type: ignore[arg-type]


def _leave(code: int) -> NoReturn:
    """Exit with ``code`` after an interrupt, whatever the interpreter marked.

    CPython marks a KeyboardInterrupt "unhandled" for good when it passes through code
    that exec() runs from a string (dataclasses builds each ``__init__`` so, at import),
    and then ends the process by SIGINT instead of with the exit code. The unwinding has
    run by now (finally blocks, the job lock, temp files); the exit hooks run here.
    """
    import atexit
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main() -> None:
    # SIGTERM (systemd, docker stop, kill) unwinds like Ctrl-C instead of ending the
    # process on the spot with no message; exit 143 as a shell reports it.
    signal.signal(signal.SIGTERM, _terminate)
    threading.excepthook = _thread_interrupted
    try:
        import logging

        # piper logs every unknown phoneme at WARNING; those are not the user's business.
        logging.getLogger("piper").setLevel(logging.ERROR)
        build_app()()
    except KeyboardInterrupt as exc:  # during the imports, or in Typer's own parsing
        _leave(report_interrupt(exc))
    except SystemExit as exc:
        if (interrupt := interruption(exc)) is not None:
            _leave(report_interrupt(interrupt))  # Typer ended it with a silent exit 130
        if exc.code in (INTERRUPTED, TERMINATED):  # a command reported it already
            _leave(exc.code)
        raise
    except Exception as exc:  # e.g. an ImportError raised while a Ctrl-C unwound an import
        if (interrupt := interruption(exc)) is None:
            raise
        _leave(report_interrupt(interrupt))
