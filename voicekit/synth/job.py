"""The job directory: a manifest and one segment file per finished bucket.

    <job>/job.json                 the plan: buckets in order, chapters, silences, tags
    <job>/segments/<hash>.npz      int16 PCM of a bucket + its sentences' lengths
    <job>/cover.<ext>              the book's cover, if any
    <job>/lock                     held (flock) while a run uses the folder

Segments are named by content hash and written atomically (temp file, then
os.replace), so a killed run leaves only whole segments; a rerun skips them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import JobError, OutputError

JOB_VERSION = 1
MANIFEST = "job.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file so readers see the old one or the whole new one, never a part."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@dataclass(frozen=True)
class Segment:
    pcm: np.ndarray
    """int16 samples of the bucket's sentences, back to back."""
    lengths: np.ndarray
    """Samples of each sentence."""


class Job:
    """An open, locked job directory."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.segments = folder / "segments"
        self._lock_fh: Any = None

    # --- lifecycle ------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path, *, restart: bool = False) -> Job:
        if restart and folder.exists():
            shutil.rmtree(folder)
        try:
            (folder / "segments").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the job folder {folder}: {exc.strerror}") from exc
        job = cls(folder)
        job._lock()
        return job

    def _lock(self) -> None:
        path = self.folder / "lock"
        self._lock_fh = path.open("a+")
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            return
        try:
            fcntl.flock(self._lock_fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self._lock_fh.close()
            self._lock_fh = None
            raise JobError(f"job folder {self.folder} is in use by another voicekit run") from exc

    def close(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- manifest -------------------------------------------------------------------
    def write_manifest(self, manifest: dict[str, Any]) -> None:
        manifest = {"version": JOB_VERSION, **manifest}
        atomic_write_bytes(self.folder / MANIFEST, json.dumps(manifest, indent=1).encode())

    def read_manifest(self) -> dict[str, Any]:
        return read_manifest(self.folder)

    # --- segments -------------------------------------------------------------------
    def segment_path(self, digest: str) -> Path:
        return self.segments / f"{digest}.npz"

    def has(self, digest: str) -> bool:
        return self.segment_path(digest).is_file()

    def write(self, digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
        path = self.segment_path(digest)
        fd, tmp = tempfile.mkstemp(prefix=f".{digest}.", suffix=".tmp", dir=self.segments)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(
                    fh,
                    pcm=pcm.astype(np.int16, copy=False),
                    lengths=np.asarray(lengths, dtype=np.int64),
                )
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def prune(self, keep: set[str]) -> int:
        """Remove segments no bucket of the current plan refers to; leftover temp files too."""
        removed = 0
        for path in self.segments.iterdir():
            if path.suffix == ".tmp" or (path.suffix == ".npz" and path.stem not in keep):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def read_manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise JobError(f"{folder} is not a voicekit job folder (no {MANIFEST})") from exc
    except (OSError, ValueError) as exc:
        raise JobError(f"job manifest {path} cannot be read: {exc}") from exc
    if data.get("version") != JOB_VERSION:
        raise JobError(
            f"job folder {folder} was written by another voicekit version",
            hint="rerun with --restart",
        )
    return data


def read_segment(folder: Path, digest: str) -> Segment | None:
    """A finished segment, or None when it is missing or damaged (then it is redone)."""
    path = folder / "segments" / f"{digest}.npz"
    try:
        with np.load(path) as data:
            segment = Segment(pcm=data["pcm"], lengths=data["lengths"])
    except (FileNotFoundError, OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    if int(segment.lengths.sum()) != len(segment.pcm):
        return None
    return segment


def segment_lengths(folder: Path, digest: str) -> np.ndarray | None:
    """Sentence lengths of a segment without reading its audio (npz members load lazily)."""
    path = folder / "segments" / f"{digest}.npz"
    try:
        with np.load(path) as data:
            lengths: np.ndarray = data["lengths"]
    except (FileNotFoundError, OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    return lengths


def iter_segments(folder: Path, digests: list[str]) -> Iterator[Segment]:
    for digest in digests:
        segment = read_segment(folder, digest)
        if segment is None:
            raise JobError(
                f"segment {digest} is missing from {folder}",
                hint="rerun the synth command to make it again",
            )
        yield segment
