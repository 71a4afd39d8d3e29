"""voicekit: batch audiobook production with neural text-to-speech."""

from importlib import metadata

try:
    __version__ = metadata.version("voicekit")
except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
