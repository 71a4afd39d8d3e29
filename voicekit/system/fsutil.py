"""Files that appear whole or not at all: write to a temp file beside, then rename.

Readers (and a rerun after a kill) see the old file or the whole new one, never a
part: ``os.replace`` within one folder is atomic. Every file voicekit writes for
keeps (job manifests, segments, profiles, audiobooks) goes through here.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(target: Path, *, suffix: str = ".tmp", lock: bool = False) -> Iterator[Path]:
    """A temp file beside ``target``, renamed over it when the block ends without error.

    The temp file is named ``.<target name>.<random><suffix>`` and removed on any error
    or interrupt. ``lock`` holds an flock on it while the block runs, so a later run
    can tell a dead writer's leftover (lock free) from a live one's. It gets the usual
    file mode (mkstemp makes files private).
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    tmp = Path(name)
    try:
        if lock:
            _lock(fd)
        yield tmp
        tmp.chmod(0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)


def write_bytes(path: Path, data: bytes) -> None:
    """``path.write_bytes(data)``, atomically."""
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def _lock(fd: int) -> None:
    with contextlib.suppress(ImportError, OSError):  # no flock (Windows): nothing to tell apart
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it.

    Elsewhere reading it means setting it and putting it straight back, which for that
    moment leaves every other thread (synthesis lanes, segment writers, piece encoders
    starting ffmpeg) with a umask of 0.
    """
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask
