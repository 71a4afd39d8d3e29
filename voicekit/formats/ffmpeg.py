"""The ffmpeg binary: finding one, checking its encoders, and running it with clear errors.

The system's ffmpeg is used when it is on PATH (a distribution build may be newer
or carry more codecs); otherwise the static build the ``imageio-ffmpeg`` package
installs. ``VOICEKIT_FFMPEG`` names a binary explicitly. imageio-ffmpeg ships no
ffprobe, so reading files back goes through ``ffmpeg -i`` and its ffmetadata muxer.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from voicekit.errors import DependencyError, InputError, SynthesisError
from voicekit.formats.chapters import Metadata, parse_ffmetadata, parse_time
from voicekit.formats.images import MAX_PIXELS

ENV_BINARY = "VOICEKIT_FFMPEG"
_INSTALL_HINT = "install ffmpeg, or pip install imageio-ffmpeg (a voicekit dependency)"


def candidates() -> list[str]:
    """ffmpeg binaries to try, best first."""
    explicit = os.environ.get(ENV_BINARY)
    if explicit:
        if not (Path(explicit).is_file() and os.access(explicit, os.X_OK)):
            raise DependencyError(f"{ENV_BINARY}={explicit} is not an executable file")
        return [explicit]
    found = []
    system = shutil.which("ffmpeg")
    if system:
        found.append(system)
    try:
        import imageio_ffmpeg

        bundled = imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError, OSError):
        bundled = None
    if bundled and bundled not in found:
        found.append(bundled)
    return found


def _command(binary: str, args: list[str], loglevel: str = "error") -> list[str]:
    # -nostdin: no keyboard commands read from a stdin that is ours (or the PCM pipe)
    return [binary, "-hide_banner", "-nostdin", "-nostats", "-loglevel", loglevel, *args]


def _libc_prctl() -> Any:
    """libc's prctl, looked up once before any fork (None off Linux or without ctypes)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, AttributeError):
        return None
    prctl.restype = ctypes.c_int
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


_PRCTL = _libc_prctl()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> dict[str, Any]:
    """Popen arguments that make ffmpeg die when voicekit does (Linux), else none.

    A SIGKILLed voicekit cannot stop its ffmpeg, which would go on writing a hidden
    partial file the size of the book. PR_SET_PDEATHSIG asks the kernel to kill the
    child when the thread that started it ends; ffmpeg is always started from the
    thread that waits for it, so that is never early. The function is looked up
    before the fork, so the child only makes one system call (no import, no lookup),
    and it checks its parent is still the one that forked it, for a parent killed
    in between.
    """
    if _PRCTL is None:
        return {}
    prctl = _PRCTL
    parent = os.getpid()
    kill = int(signal.SIGKILL)

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return {"preexec_fn": preexec}


# errnos whose text ffmpeg prints (av_err2str) when writing fails: these are the user's to
# fix (free space, a writable folder), not ffmpeg's failure
_WRITE_ERRNOS = (
    errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EISDIR,
    errno.ENOTDIR, errno.EFBIG, errno.EIO, errno.ENAMETOOLONG,
)  # fmt: skip


def os_error_in(message: str) -> OSError | None:
    """The OS error ffmpeg reports in ``message`` ("No space left on device"), if any."""
    for number in _WRITE_ERRNOS:
        text = os.strerror(number)
        if text and text in message:
            return OSError(number, text)
    return None


def _cannot_run(binary: str, exc: Exception) -> DependencyError:
    return DependencyError(f"cannot run ffmpeg at {binary}: {exc}")


def _complete(
    binary: str,
    args: list[str],
    *,
    stdin: bytes | None = None,
    timeout: float = 3600,
    loglevel: str = "error",
) -> subprocess.CompletedProcess[bytes]:
    """ffmpeg run to the end, its output captured; DependencyError if it cannot run."""
    try:
        return subprocess.run(
            _command(binary, args, loglevel),
            input=stdin,
            capture_output=True,
            timeout=timeout,
            **_die_with_parent(),
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise _cannot_run(binary, exc) from exc


class _Running:
    """ffmpeg started in the background, its stderr kept in a file for the error message."""

    def __init__(self, proc: subprocess.Popen[bytes], errors: IO[bytes]) -> None:
        self.proc = proc
        self._errors = errors
        self.text = ""
        """Everything ffmpeg printed (after ``finish``)."""

    def finish(self) -> tuple[int, str]:
        """Wait for ffmpeg to end: its exit code and the last line it printed."""
        code = self.proc.wait()
        self._errors.seek(0)
        self.text = self._errors.read().decode("utf-8", "replace")
        return code, _tail(self.text)


@contextlib.contextmanager
def _spawn(
    binary: str, args: list[str], loglevel: str = "error", **popen: Any
) -> Iterator[_Running]:
    """Start ffmpeg; if the block fails or is abandoned, ffmpeg is killed and reaped."""
    # a file, not a pipe: a chatty ffmpeg cannot block on a full stderr pipe
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(
                _command(binary, args, loglevel), stderr=errors, **_die_with_parent(), **popen
            )
        except OSError as exc:
            raise _cannot_run(binary, exc) from exc
        try:
            yield _Running(proc, errors)
        except BaseException:
            proc.kill()
            proc.wait()
            raise


@functools.lru_cache(maxsize=8)
def encoders_of(binary: str) -> frozenset[str]:
    """Names of the audio and image encoders a binary was built with."""
    out = _complete(binary, ["-encoders"], timeout=30).stdout.decode("utf-8", "replace")
    names = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and len(parts[0]) == 6 and parts[0][0] in "AVS":
            names.add(parts[1])
    return frozenset(names)


def find_ffmpeg(encoder: str | None = None) -> str:
    """A binary (with ``encoder`` when given), or DependencyError saying what is missing."""
    found = candidates()
    if not found:
        raise DependencyError(
            "ffmpeg is needed for this output format but was not found", hint=_INSTALL_HINT
        )
    if encoder is None:
        return found[0]
    for binary in found:
        if encoder in encoders_of(binary):
            return binary
    raise DependencyError(
        f"no ffmpeg with the '{encoder}' encoder (tried {', '.join(found)})", hint=_INSTALL_HINT
    )


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


# --------------------------------------------------------------------------- encoding
def encode_pcm(
    binary: str,
    pcm: Iterable[np.ndarray],
    sample_rate: int,
    output_args: list[str],
    *,
    what: str,
    extra_inputs: list[str] | None = None,
    log: list[str] | None = None,
) -> None:
    """Stream int16 mono PCM into ffmpeg's stdin; ``output_args`` end with ``-f fmt path``.

    ``log``, when given, receives what ffmpeg printed at the info level (a measuring
    filter in ``output_args``' chain, such as ``ebur128``, reports there).
    Nothing is collected: each chunk goes to the pipe as it comes. If the PCM source
    raises, ffmpeg is stopped and the error goes on unchanged. When ffmpeg fails for
    an OS reason (disk full, read-only folder) that OSError is raised, for the
    caller to name the file and say what to free or fix.
    """
    args = [
        "-y", "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
        *(extra_inputs or []), *output_args,
    ]  # fmt: skip
    popen = {"stdin": subprocess.PIPE, "stdout": subprocess.DEVNULL, "bufsize": 1 << 20}
    with _spawn(binary, args, "info" if log is not None else "error", **popen) as ff:
        broken = _feed(ff.proc.stdin, pcm)  # True: ffmpeg died; its message says why
        code, message = ff.finish()
    # ffmpeg 5.1 exits 0 when writing its trailer fails ("Error writing trailer of ...: No
    # space left on device"), so what it printed is read whatever the exit code says
    reason = os_error_in(ff.text)
    if code != 0 or broken or reason is not None:
        failure = SynthesisError(f"ffmpeg could not write {what}: {message}")
        if reason is not None:
            raise reason from failure
        raise failure
    if log is not None:
        log.append(ff.text)


def analyse_pcm(
    binary: str, pcm: Iterable[np.ndarray], sample_rate: int, filters: str, *, what: str
) -> str:
    """Stream int16 mono PCM through ``filters`` into no file; what ffmpeg printed.

    For the measuring filters (loudnorm, ebur128, astats), which report on stderr at
    the info level when the stream ends.
    """
    args = [
        "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
        "-af", filters, "-f", "null", "-",
    ]  # fmt: skip
    popen = {"stdin": subprocess.PIPE, "stdout": subprocess.DEVNULL, "bufsize": 1 << 20}
    with _spawn(binary, args, "info", **popen) as ff:
        broken = _feed(ff.proc.stdin, pcm)
        code, message = ff.finish()
    if code != 0 or broken:
        raise SynthesisError(f"ffmpeg could not {what}: {message}")
    return ff.text


def _feed(stdin: IO[bytes] | None, pcm: Iterable[np.ndarray]) -> bool:
    """Write every chunk to ``stdin`` and close it; True if ffmpeg went away first."""
    assert stdin is not None
    broken = False
    for chunk in pcm:
        data = np.ascontiguousarray(chunk, dtype="<i2")
        if not data.size:
            continue
        try:
            stdin.write(memoryview(data).cast("B"))
        except BrokenPipeError:
            broken = True
            break
    with contextlib.suppress(BrokenPipeError, ValueError):
        stdin.close()
    return broken


def filter_pcm(
    binary: str,
    pcm: Iterable[np.ndarray],
    sample_rate: int,
    filters: str,
    *,
    what: str,
    block: int = 1 << 16,
) -> Iterator[np.ndarray]:
    """int16 mono PCM through an ffmpeg filter chain, streamed: same rate and format out.

    A thread feeds ffmpeg while this generator reads it (a pipe each way would
    deadlock in one thread). An error from ``pcm`` is raised here, unchanged; a reader
    that stops early stops ffmpeg, and the feeding thread then ends on the broken pipe.
    """
    args = [
        "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "-i", "pipe:0",
        "-af", filters, "-f", "s16le", "-ar", str(sample_rate), "-ac", "1", "pipe:1",
    ]  # fmt: skip
    failed: list[BaseException] = []
    popen = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "bufsize": 1 << 20}
    with _spawn(binary, args, **popen) as ff:

        def feed() -> None:
            try:
                _feed(ff.proc.stdin, pcm)
            except BaseException as exc:  # handed to the reading thread
                failed.append(exc)
                with contextlib.suppress(OSError, ValueError):
                    ff.proc.stdin.close()  # type: ignore[union-attr]

        feeder = threading.Thread(target=feed, name="voicekit-filter-feed", daemon=True)
        feeder.start()
        try:
            yield from _read_pcm(ff.proc.stdout, block)
        except BaseException:
            ff.proc.kill()  # the feeder then fails on the broken pipe and ends
            feeder.join()
            raise
        feeder.join()
        code, message = ff.finish()
    if failed:
        raise failed[0]
    if code != 0:
        raise SynthesisError(f"ffmpeg could not {what}: {message}")


def run(
    binary: str,
    args: list[str],
    *,
    what: str,
    stdin: bytes | None = None,
    error: type[Exception] = SynthesisError,
    writing: bool = False,
) -> bytes:
    """Run ffmpeg to completion; stdout as bytes, or ``error`` with ffmpeg's last line.

    ``writing``: ffmpeg writes a file, so an OS error it reports (disk full, read-only
    folder) is raised as that OSError, whatever its exit code (as ``encode_pcm`` does).
    """
    proc = _complete(binary, args, stdin=stdin)
    text = proc.stderr.decode("utf-8", "replace")
    reason = os_error_in(text) if writing else None
    if proc.returncode != 0 or reason is not None:
        failure = error(f"ffmpeg could not {what}: {_tail(text)}")
        if reason is not None:
            raise reason from failure
        raise failure
    return proc.stdout


# --------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    seconds: float | None
    """Container duration; None when the file does not say."""
    codec: str
    has_cover: bool


_DURATION = re.compile(r"Duration: (\d+:\d\d:\d\d(?:\.\d+)?)")
_AUDIO = re.compile(r"Stream #\d+:\d+.*?: Audio: (\w+).*?, (\d+) Hz")
_STREAM_TAGGED = frozenset({"opus", "vorbis", "speex"})
"""Codecs whose tags ffmpeg reports on the audio stream, not the file (Ogg's comments)."""


def probe(path: Path, binary: str | None = None) -> AudioInfo:
    """Sample rate, duration and cover of a file ffmpeg reads (``ffmpeg -i``; no ffprobe)."""
    binary = binary or find_ffmpeg()
    # no output named: ffmpeg fails after printing the input's description, which is all we need
    proc = _complete(binary, ["-i", str(path)], timeout=120, loglevel="info")
    text = proc.stderr.decode("utf-8", "replace")
    audio = _AUDIO.search(text)
    if audio is None:
        if "Input #0" in text:
            raise InputError(f"{path} has no audio stream")
        raise InputError(f"{path} is not audio that ffmpeg can read ({_tail(text)})")
    duration = _DURATION.search(text)
    return AudioInfo(
        sample_rate=int(audio.group(2)),
        seconds=parse_time(duration.group(1)) if duration else None,
        codec=audio.group(1),
        has_cover="(attached pic)" in text,
    )


def read_ffmetadata(path: Path, binary: str | None = None, *, stream: bool = False) -> str:
    """The file's tags and chapters as ffmpeg's FFMETADATA text.

    ``stream=True`` reads the first audio stream's tags instead of the container's
    (Ogg keeps its tags there).
    """
    binary = binary or find_ffmpeg()
    mapping = ["-map_metadata", "0:s:a:0"] if stream else []
    out = run(
        binary,
        ["-i", str(path), *mapping, "-f", "ffmetadata", "pipe:1"],
        what=f"read the tags of {path}",
        error=InputError,
    )
    return out.decode("utf-8", "replace")


def read_metadata(path: Path, binary: str | None = None, info: AudioInfo | None = None) -> Metadata:
    """The file's tags (the audio stream's too where they live there) and chapters."""
    binary = binary or find_ffmpeg()
    info = info or probe(path, binary)
    meta = parse_ffmetadata(read_ffmetadata(path, binary))
    if info.codec in _STREAM_TAGGED:
        stream = parse_ffmetadata(read_ffmetadata(path, binary, stream=True))
        meta.tags = {**stream.tags, **meta.tags}
    return meta


def extract_cover(path: Path, binary: str | None = None) -> bytes | None:
    """The embedded cover picture's bytes as stored (JPEG or PNG), or None."""
    binary = binary or find_ffmpeg()
    try:
        data = run(
            binary,
            [
                "-i",
                str(path),
                "-map",
                "0:v:0",
                "-c:v",
                "copy",
                "-frames:v",
                "1",
                "-f",
                "image2pipe",
                "pipe:1",
            ],
            what="read the cover",
        )
    except SynthesisError:
        return None
    return data or None


def to_png(data: bytes, binary: str | None = None) -> bytes:
    """Any image ffmpeg reads (GIF, WebP, BMP...) as PNG, for containers that take JPEG/PNG."""
    binary = binary or find_ffmpeg("png")
    # the decoder refuses a bigger picture before allocating it: types whose size
    # images.py cannot read from the header (BMP, TIFF...) are bounded too
    return run(
        binary,
        ["-max_pixels", str(MAX_PIXELS), "-i", "pipe:0", "-frames:v", "1", "-c:v", "png",
         "-f", "image2pipe", "pipe:1"],
        what="convert the cover image",
        stdin=data,
        error=InputError,
    )


def decode_pcm(
    path: Path, sample_rate: int, binary: str | None = None, block: int = 1 << 16
) -> Iterator[np.ndarray]:
    """Any audio ffmpeg reads as int16 mono at ``sample_rate``, in blocks (never all at once)."""
    binary = binary or find_ffmpeg()
    args = [
        "-i", str(path), "-map", "0:a:0", "-vn", "-ac", "1", "-ar", str(sample_rate),
        "-f", "s16le", "pipe:1",
    ]  # fmt: skip
    # a reader that stops early closes this generator: _spawn then stops ffmpeg too
    with _spawn(binary, args, stdout=subprocess.PIPE) as ff:
        yield from _read_pcm(ff.proc.stdout, block)
        code, message = ff.finish()
    if code != 0:
        raise InputError(f"ffmpeg could not decode {path}: {message}")


def _read_pcm(stdout: IO[bytes] | None, block: int) -> Iterator[np.ndarray]:
    """int16 samples from ffmpeg's s16le output, ``block`` at a time (an odd byte waits)."""
    assert stdout is not None
    carry = b""
    while data := stdout.read(block * 2):
        data = carry + data
        cut = len(data) - (len(data) % 2)
        carry = data[cut:]
        yield np.frombuffer(data[:cut], dtype="<i2")
