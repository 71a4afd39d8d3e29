"""Output files: which format, and writing one atomically from a finished job."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

from voicekit.errors import InputError, OutputError, SynthesisError, os_error
from voicekit.formats.encoders import ENCODERS, EncodeOptions, Encoder
from voicekit.formats.timeline import Timeline
from voicekit.settings import FORMATS
from voicekit.system.fsutil import replacing

EXTENSIONS = {"wav": ".wav", "flac": ".flac", "mp3": ".mp3", "opus": ".opus", "m4b": ".m4b"}
ALIASES = {".m4a": "m4b", ".ogg": "opus", ".wave": "wav"}


def format_for(output: Path, requested: str | None, default: str = "wav") -> str:
    """``--format`` wins; else the extension, else ``default``; unknown extensions are refused."""
    if requested:
        fmt = requested.lower()
        if fmt not in FORMATS:
            raise InputError(f"unknown format '{requested}'; choose from {', '.join(FORMATS)}")
        return fmt
    suffix = output.suffix.lower()
    if not suffix:
        return default
    fmt = ALIASES.get(suffix, suffix.lstrip("."))
    if fmt not in FORMATS:
        raise InputError(
            f"unknown output extension '{suffix}' for {output}; use "
            f"{', '.join(EXTENSIONS.values())} or --format"
        )
    return fmt


_USERS_TO_FIX = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO, errno.EFBIG}
)
"""OS errors behind an encoder failure that the user fixes (space, permissions, disk)."""

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def check_target(path: Path, protect: Iterable[Path] = ()) -> None:
    """Refuse to write ``path`` where it is not a regular file, or is one of ``protect``.

    An output is written beside and renamed over, which would replace a device node,
    FIFO or symbolic link by a regular file (``-o /dev/null --force`` as root), or
    a book's own input. One check, for synth and convert, for single files and for
    every chapter file of a split.
    """
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing there to replace; check_output says if the folder is unusable
    except OSError as exc:
        raise os_error(exc, OutputError, f"cannot check the output {path}") from exc
    if not stat.S_ISREG(st.st_mode):
        kind = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        raise OutputError(
            f"{path} is {kind}; voicekit replaces only regular files", hint="choose another -o"
        )
    for source in protect:
        with contextlib.suppress(OSError):
            if os.path.samefile(path, source):
                raise OutputError(f"the output {path} would replace the input; choose another -o")


def check_output(output: Path, force: bool, protect: Iterable[Path] = ()) -> None:
    """Refuse to clobber, and prove the folder is writable before any work starts.

    A split output's playlist is written after its chapter files, so it is what
    "the output exists" means there too: chapter files without a playlist are an
    interrupted run's, which a rerun replaces without ``--force``.
    """
    check_target(output, protect)
    if output.exists() and not force:
        raise OutputError(f"{output} exists; use --force to replace it")
    problem = folder_problem(output.parent)
    if problem:
        raise OutputError(f"cannot write to {output.parent}: {problem}")


def folder_problem(folder: Path) -> str:
    """'' when ``folder`` (created if needed) takes a new file, else why not."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".voicekit-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return exc.strerror or str(exc)
    return ""


def _partial_pattern(output: Path) -> re.Pattern[str]:
    """Names write_atomic gives ``output``'s temp files (mkstemp's 8 random characters)."""
    return re.compile(
        re.escape(f".{output.name}.") + r"[a-z0-9_]{8}" + re.escape(f".partial{output.suffix}")
    )


def clean_partials(output: Path) -> int:
    """Delete temp files a killed run left for ``output``; returns how many.

    Only names write_atomic makes for this very output, and only those no writer
    holds: a writer keeps an flock on its temp file, so one whose lock can be
    taken belongs to a run that is gone.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock: never guess whose file it is
        return 0
    pattern = _partial_pattern(output)
    try:
        names = [n for n in os.listdir(output.parent) if pattern.fullmatch(n)]
    except OSError:
        return 0
    removed = 0
    for name in names:
        path = output.parent / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and os.lstat(path).st_ino == st.st_ino:
                os.unlink(path)
                removed += 1
        except OSError:
            pass  # held by a live writer, or gone meanwhile
        finally:
            os.close(fd)
    return removed


def write_atomic(
    output: Path,
    fmt: str,
    timeline: Timeline,
    pcm: Iterable[np.ndarray],
    options: EncodeOptions,
    *,
    encoder: Encoder | None = None,
    before_replace: Callable[[Path], None] | None = None,
) -> None:
    """Encode into a temp file beside ``output``, then rename: the file is whole or absent.

    The temp file stays locked while it is written, so the next run can tell a
    dead run's leftover (deleted here, before writing) from a live one's.
    ``encoder`` replaces the format's own (a split book writes its chapter files and
    then the playlist this way). ``before_replace`` sees the finished temp file just
    before the rename. OS errors (disk full, read-only folder) become OutputError (exit 3).
    """
    if encoder is None and options.room_tone is not None:  # a real file, not a split's playlist
        timeline, pcm = options.room_tone.apply(timeline, pcm)
    encoder = encoder or ENCODERS.get(fmt)
    if encoder is None:
        raise OutputError(f"no encoder for {fmt}")
    check_target(output, options.protect)
    clean_partials(output)
    what = f"cannot write {output}"
    tmp: Path | None = None
    try:
        with replacing(output, suffix=f".partial{output.suffix}", lock=True) as tmp:
            encoder(tmp, timeline, pcm, options)
            if before_replace is not None:
                before_replace(tmp)
    except OSError as exc:
        if tmp is not None and exc.filename is not None and Path(os.fsdecode(exc.filename)) == tmp:
            exc = OSError(exc.errno, exc.strerror)  # the temp name means nothing to the user
        raise os_error(exc, OutputError, what) from exc
    except SynthesisError as exc:
        cause = _os_cause(exc)  # e.g. mutagen saving tags onto a full disk
        if cause is None:
            raise
        raise os_error(cause, OutputError, what) from exc


def _os_cause(exc: BaseException) -> OSError | None:
    """The ordinary OS error (disk full...) behind an encoder's failure, if that is what it is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in _USERS_TO_FIX:
            return current
        current = current.__cause__ or current.__context__
    return None
