"""voicekit: batch audiobook production with neural text-to-speech."""

from __future__ import annotations


def __getattr__(name: str) -> object:
    # Looked up on first use: importlib.metadata costs some 30 ms at every start, a window
    # in which a Ctrl-C would land before the command line can report it in one line.
    if name == "__version__":
        from importlib import metadata

        try:
            version = metadata.version("voicekit")
        except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
            version = "0.0.0+unknown"
        globals()["__version__"] = version
        return version
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
