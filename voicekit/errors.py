"""The one exception family. Only the CLI turns these into a message and an exit code.

Exit codes (also in the README):

====  =========================================================
0     success
1     synthesis or encoding failed; in a batch, some books failed
2     bad input or usage: missing/empty/binary file, not UTF-8/16/32, bad option
3     output problem: exists (no --force), not a regular file, the input itself,
      folder not writable, disk full
4     voice problem: missing or broken voice files
5     device problem: asked-for device absent, not enough memory
6     missing dependency or tool (torch, ffmpeg, ...)
7     job folder: in use by another run, unreadable or unwritable, or not voicekit's
130   interrupted (Ctrl-C); finished work is kept
143   terminated (SIGTERM); finished work is kept
====  =========================================================
"""

from __future__ import annotations

import errno
import os


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


# What the user can do about an ordinary OS error, by errno. The message names the
# path; this says what to free or fix.
_ERRNO_FIXES: dict[int, str] = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is exceeded: free some space",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "permission denied: choose a folder you can write to",
    errno.EPERM: "operation not permitted: choose a folder you can write to",
    errno.EISDIR: "a folder is where a file should be: move it away",
    errno.ENOTDIR: "a file is where a folder should be: move it away",
    errno.ENAMETOOLONG: "the name is too long: choose a shorter path",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.EIO: "an input/output error: check the disk",
}


def os_error(
    exc: OSError,
    cls: type[VoicekitError],
    what: str,
    *,
    kept: bool = False,
) -> VoicekitError:
    """An ordinary OS error as a one-line user error of class ``cls``.

    ``what`` says what voicekit was doing ("cannot write the job folder ..."); the
    line adds the OS's reason and what to free or fix, and "finished buckets are
    kept" when ``kept``. One mapping for every caller, so disk full reads the same
    wherever it happens.
    """
    reason = exc.strerror or type(exc).__name__
    fix = _ERRNO_FIXES.get(exc.errno or -1)
    named = exc.filename and str(exc.filename) not in what
    where = f" ({os.fsdecode(exc.filename)})" if named else ""
    message = f"{what}{where}: {reason}"
    hints = [h for h in (fix, "finished buckets are kept" if kept else None) if h]
    error = cls(message, hint="; ".join(hints) or None)
    error.__cause__ = exc
    return error
