"""The one exception family. Only the CLI turns these into a message and an exit code.

Exit codes (also in the README):

====  =========================================================
0     success
1     synthesis or encoding failed; in a batch, some books failed
2     bad input or usage: missing/empty/undecodable file, bad option
3     output problem: exists (no --force), folder not writable
4     voice problem: missing or broken voice files
5     device problem: asked-for device absent, not enough memory
6     missing dependency or tool (torch, ffmpeg, ...)
7     job directory in use by another run, or unreadable
130   interrupted (Ctrl-C); finished work is kept
====  =========================================================
"""

from __future__ import annotations


class VoicekitError(Exception):
    """Base of every error meant for the user: one line, plus an optional hint."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(VoicekitError):
    """Bad input file, text or option value."""

    exit_code = 2


class ProfileError(InputError):
    """A profile that does not exist or cannot be read."""


class OutputError(VoicekitError):
    """The output cannot be written (exists, unwritable, unknown format)."""

    exit_code = 3


class VoiceError(VoicekitError):
    """A voice that is missing or cannot be loaded."""

    exit_code = 4


class DeviceError(VoicekitError):
    """A device that was asked for is not usable."""

    exit_code = 5


class DependencyError(VoicekitError):
    """An optional package or external tool is missing."""

    exit_code = 6


class JobError(VoicekitError):
    """The job directory is locked by another run or cannot be read."""

    exit_code = 7


class SynthesisError(VoicekitError):
    """Synthesis or encoding failed for a reason that is not the user's input."""

    exit_code = 1
