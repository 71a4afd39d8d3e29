"""The job directory: a manifest and one segment file per finished bucket.

    <job>/.voicekit-job            the marker: this folder is voicekit's (written first)
    <job>/job.json                 the plan: buckets in order, chapters, silences, tags
    <job>/segments/<hash>.npz      int16 PCM of a bucket, its sentences' lengths, a CRC-32
    <job>/pieces/<key>.m4a         an encoded piece of the output (synth/finish.py), or
    <job>/pieces/<key>.flac        a piece of its audio through the loudness chain (raw
    <job>/pieces/<key>.pcm           int16 PCM for a WAV output), and
    <job>/pieces/<key>.json        its length and loudness blocks, written after it
    <job>/cover.<ext>              the book's cover, if any
    <job>/lock                     held (flock) while a run uses the folder
    <job>/output.json              written just before the output is renamed into place

Segments are named by content hash and written atomically (temp file, then
os.replace), so a killed run leaves only whole segments; a rerun skips them.

The lock has two modes. A run that makes a book holds it exclusively: it writes the
manifest, the pieces and the output, and may clear or remove the folder. A range
unit of a cluster batch (``cluster/``: one book's buckets split between workers)
holds it shared: several of them, on any nodes that see the folder, write segments
into it side by side and nothing else. That is safe because segments are all they
write, each is named by its content hash and written atomically, and the ranges
hold disjoint buckets; clearing, pruning, the manifest and the output stay with the
exclusive holder, which cannot get the lock while any range holds it (and no range
can start while it does). So a finishing run, or a local ``voicekit synth`` of the
same book, waits for the ranges, and never sees a folder changing under it.

voicekit deletes only what it made: a folder is opened as a job when it is new or
empty (then marked), carries the marker, or is a job of an older voicekit (a
manifest and nothing else foreign); any other folder is refused. Removing a job
deletes the names above and nothing else, then the folders if they are empty.
"""

from __future__ import annotations

import contextlib
import json
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import JobError, os_error
from voicekit.formats.images import IMAGE_EXTENSIONS
from voicekit.synth.manifest import Manifest
from voicekit.system.fsutil import replacing, write_bytes

MANIFEST = "job.json"
MARKER = ".voicekit-job"
LOCK = "lock"
OUTPUT_RECORD = "output.json"
SEGMENTS = "segments"
PIECES = "pieces"
_PIECE_SUFFIXES = (".m4a", ".flac", ".pcm", ".json")
_SUBFOLDERS = {SEGMENTS: (".npz",), PIECES: _PIECE_SUFFIXES}
"""Folders voicekit makes in a job, and the file endings it writes in each."""
_COVERS = frozenset(f"cover{ext}" for ext in IMAGE_EXTENSIONS.values())
_OWN_FILES = frozenset({MARKER, MANIFEST, LOCK, OUTPUT_RECORD, *_COVERS})
"""Every file voicekit writes at the top of a job folder (temp files aside)."""


def _is_own_temp(name: str) -> bool:
    """A temp file of fsutil.replacing (``.<name>.<random>.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def _foreign(folder: Path) -> list[str]:
    """Names in ``folder`` voicekit did not write there (empty: the folder is a job's)."""
    names = []
    for entry in os.scandir(folder):
        if entry.name in _SUBFOLDERS and entry.is_dir(follow_symlinks=False):
            names += [
                f"{entry.name}/{e.name}"
                for e in os.scandir(entry.path)
                if not _is_own_in(entry.name, e.name) or not e.is_file(follow_symlinks=False)
            ]
        elif (entry.name not in _OWN_FILES and not _is_own_temp(entry.name)) or not entry.is_file(
            follow_symlinks=False
        ):
            names.append(entry.name)
    return names


def _is_own_in(subfolder: str, name: str) -> bool:
    return name.endswith(_SUBFOLDERS[subfolder]) or _is_own_temp(name)


def _is_legacy_job(folder: Path) -> bool:
    """A job written before the marker existed: a voicekit manifest and only its files."""
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and "version" in data and "buckets" in data


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
        self.segments = folder / SEGMENTS
        self._lock_fh: Any = None

    # --- lifecycle ------------------------------------------------------------------
    @classmethod
    def open(cls, folder: Path, *, restart: bool = False, shared: bool = False) -> Job:
        """Create or adopt ``folder`` as a job and lock it; ``restart`` then empties it.

        The lock comes before the restart's clearing, so a run in progress keeps its
        work. A folder holding anything voicekit did not write is refused (JobError).
        ``shared``: the lock of a writer of segments only (the module's docstring says
        who may hold it); such a holder must not restart, prune or remove the job.
        """
        if shared and restart:
            raise ValueError("a shared job cannot be restarted: that needs the folder alone")
        job = cls(folder)
        job._claim(retry=shared)
        job._lock(shared)
        try:
            if restart:
                job.clear()
            job._guard(lambda: job.segments.mkdir(exist_ok=True), "cannot create")
        except BaseException:
            job.close()
            raise
        return job

    def _claim(self, *, retry: bool = False) -> None:
        """Make the folder (or adopt an empty one) and mark it; refuse one that is not ours.

        ``retry``: sharers may claim a new folder at the same moment, and one may see
        the other's marker half-written (its temp file): the marker settles that.
        """
        try:
            self._claim_once()
        except JobError:
            if not (retry and (self.folder / MARKER).is_file()):
                raise

    def _claim_once(self) -> None:
        folder = self.folder
        if folder.exists() and not folder.is_dir():
            raise JobError(f"the job folder {folder} is a file, not a folder")
        made = not folder.exists()
        self._guard(lambda: folder.mkdir(parents=True, exist_ok=True), "cannot create")
        if (folder / MARKER).is_file():
            return
        try:
            foreign = _foreign(folder)
        except OSError as exc:
            raise os_error(exc, JobError, f"cannot read the job folder {folder}") from exc
        legacy = _is_legacy_job(folder)
        made = made or legacy  # an older voicekit made that folder
        if foreign or (any(folder.iterdir()) and not legacy):
            shown = ", ".join(sorted(foreign)[:3]) + (", ..." if len(foreign) > 3 else "")
            raise JobError(
                f"{folder} is not a voicekit job folder"
                + (f" (it holds {shown})" if shown else "")
                + "; voicekit will not use or delete a folder it did not make",
                hint="give --work-dir a new or empty folder",
            )
        # the marker says whether voicekit made the folder: one the user made stays
        note = json.dumps({"voicekit": "job folder", "made_folder": made}).encode()
        self._guard(lambda: write_bytes(folder / MARKER, note), "cannot write")

    def _lock(self, shared: bool = False) -> None:
        path = self.folder / LOCK
        self._lock_fh = self._guard(lambda: path.open("a+"), "cannot write")
        try:
            self._flock(shared)
        except OSError as exc:
            self._lock_fh.close()
            self._lock_fh = None
            raise JobError(f"job folder {self.folder} is in use by another voicekit run") from exc

    def _flock(self, shared: bool) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no advisory lock
            return
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        fcntl.flock(self._lock_fh.fileno(), mode | fcntl.LOCK_NB)

    def share(self) -> None:
        """Hold the lock shared from now on: range units may write segments beside us.

        flock converts the lock in place, though not atomically; another run taking
        it exclusively in that instant is refused the next time a range asks.
        """
        if self._lock_fh is not None:
            self._guard(lambda: self._flock(shared=True), "cannot lock")

    def _guard(self, action: Any, doing: str) -> Any:
        """Run ``action``; an OS error becomes a JobError (exit 7) that says what to fix."""
        try:
            return action()
        except OSError as exc:
            raise os_error(
                exc, JobError, f"{doing} the job folder {self.folder}", kept=self._has_segments()
            ) from exc

    def _has_segments(self) -> bool:
        with contextlib.suppress(OSError):
            return any(p.suffix == ".npz" for p in self.segments.iterdir())
        return False

    def close(self) -> None:
        if self._lock_fh is not None:
            self._lock_fh.close()
            self._lock_fh = None

    def clear(self) -> None:
        """Delete the finished work (segments, manifest, cover, output record); keep the folder.

        Only voicekit's own names are deleted; the marker and the held lock stay.
        """
        self._guard(lambda: self._delete_own(keep={MARKER, LOCK}), "cannot clear")

    def remove(self) -> None:
        """Delete what voicekit wrote here, then the folders if nothing else is left."""
        try:
            made = self._made_folder()
            self._delete_own(keep={MARKER, LOCK})
            (self.folder / LOCK).unlink(missing_ok=True)
            self.close()
            (self.folder / MARKER).unlink(missing_ok=True)  # last: a half-removed job is still ours
            if made:
                with contextlib.suppress(OSError):  # not empty: someone else's file is kept
                    self.folder.rmdir()
        except OSError as exc:
            raise os_error(exc, JobError, f"cannot remove the job folder {self.folder}") from exc
        finally:
            self.close()

    def _made_folder(self) -> bool:
        """Whether voicekit made the folder (a legacy job's folder was voicekit's too)."""
        try:
            note = json.loads((self.folder / MARKER).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return _is_legacy_job(self.folder)
        except (OSError, ValueError):
            return False
        return bool(isinstance(note, dict) and note.get("made_folder"))

    def _delete_own(self, keep: set[str]) -> None:
        for sub in _SUBFOLDERS:
            folder = self.folder / sub
            if not folder.is_dir():
                continue
            for entry in os.scandir(folder):
                if _is_own_in(sub, entry.name) and entry.is_file(follow_symlinks=False):
                    os.unlink(entry.path)
            with contextlib.suppress(OSError):
                folder.rmdir()
        for entry in os.scandir(self.folder):
            own = entry.name in _OWN_FILES or _is_own_temp(entry.name)
            if own and entry.name not in keep and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- manifest, cover, output record ---------------------------------------------
    def write_manifest(self, manifest: Manifest) -> None:
        data = manifest.to_json()
        self._guard(lambda: write_bytes(self.folder / MANIFEST, data), "cannot write")

    def read_manifest(self) -> Manifest:
        return read_manifest(self.folder)

    def write_cover(self, name: str, data: bytes) -> None:
        if name not in _COVERS:
            raise ValueError(f"not a cover name: {name}")
        self._guard(lambda: write_bytes(self.folder / name, data), "cannot write")

    def record_output(self, output: Path, written: Path, info: dict[str, Any]) -> None:
        """Say, before ``written`` is renamed to ``output``, that this job made it.

        A run killed between that rename and the job's removal leaves this record;
        the next run finds the output it names (same file, size and time) and only
        tidies up, instead of refusing the output as someone else's.
        """
        st = written.stat()
        record = {
            "output": str(output.absolute()),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "inode": st.st_ino,
            **info,
        }
        data = json.dumps(record, indent=1).encode()
        self._guard(lambda: write_bytes(self.folder / OUTPUT_RECORD, data), "cannot write")

    def forget_output(self) -> None:
        """A new run is under way: no output is complete until it says so again."""
        self._guard(lambda: (self.folder / OUTPUT_RECORD).unlink(missing_ok=True), "cannot write")

    # --- segments -------------------------------------------------------------------
    def segment_path(self, digest: str) -> Path:
        return self.segments / f"{digest}.npz"

    def has(self, digest: str) -> bool:
        return self.segment_path(digest).is_file()

    def finished(self, digests: list[str]) -> dict[str, int]:
        """The whole segments among ``digests``, with their samples; a damaged one is
        deleted, to be made again (a torn write after a power loss, a bad disk)."""
        found: dict[str, int] = {}
        for digest in digests:
            if digest in found or not self.has(digest):
                continue
            samples = verify_segment(self.folder, digest)
            if samples is None:
                self.segment_path(digest).unlink(missing_ok=True)
            else:
                found[digest] = samples
        return found

    def write(self, digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
        write_segment(self.folder, digest, pcm, lengths)

    # --- encoded pieces (synth/finish.py) ----------------------------------------------
    def ensure_pieces(self) -> Path:
        folder = self.folder / PIECES
        self._guard(lambda: folder.mkdir(exist_ok=True), "cannot write")
        return folder

    def write_piece_record(self, path: Path, text: str) -> None:
        """A piece's record, written after its audio: a piece without one is redone."""
        self._guard(lambda: write_bytes(path, text.encode()), "cannot write")

    def prune_pieces(self, keep: set[str]) -> None:
        """Remove pieces the output no longer uses (another gain, another bitrate...)."""
        folder = self.folder / PIECES
        if not folder.is_dir():
            return
        for entry in os.scandir(folder):
            stale = entry.name not in keep and _is_own_in(PIECES, entry.name)
            if stale and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)

    def prune(self, keep: set[str]) -> int:
        """Remove segments no bucket of the current plan refers to; leftover temp files too."""
        removed = 0
        for path in self.segments.iterdir():
            if path.suffix == ".tmp" or (path.suffix == ".npz" and path.stem not in keep):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def write_segment(folder: Path, digest: str, pcm: np.ndarray, lengths: list[int]) -> None:
    """Write one finished bucket into the job ``folder``, atomically, with its CRC-32.

    What :meth:`Job.write` does, without the job's lock: the synthesis workers
    (synth/workers.py) write into a job their main process holds locked.
    """
    job = Job(folder)  # a handle only: opening it would take the lock

    def store() -> None:
        samples = np.ascontiguousarray(pcm, dtype=np.int16)
        with replacing(job.segment_path(digest)) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                pcm=samples,
                lengths=np.asarray(lengths, dtype=np.int64),
                crc32=np.uint32(pcm_checksum(samples)),
            )

    job._guard(store, "cannot write")


def pcm_checksum(pcm: np.ndarray) -> int:
    """CRC-32 of the samples as stored (little-endian int16)."""
    return zlib.crc32(memoryview(np.ascontiguousarray(pcm, dtype="<i2")).cast("B"))


def has_finished_work(folder: Path) -> bool:
    """Whether ``folder`` is a voicekit job holding finished segments (for "kept" notes)."""
    try:
        if not (folder / MARKER).is_file() and not _is_legacy_job(folder):
            return False
        return any(p.suffix == ".npz" for p in (folder / SEGMENTS).iterdir())
    except OSError:
        return False


def completed_output(folder: Path, output: Path) -> dict[str, Any] | None:
    """The record of a job that finished ``output``, if ``output`` is still that very file."""
    try:
        record: dict[str, Any] = json.loads((folder / OUTPUT_RECORD).read_text(encoding="utf-8"))
        st = os.lstat(output)
    except (OSError, ValueError):
        return None
    same = (
        isinstance(record, dict)
        and record.get("output") == str(output.absolute())
        and (record.get("size"), record.get("mtime_ns"), record.get("inode"))
        == (st.st_size, st.st_mtime_ns, st.st_ino)
    )
    return record if same else None


def read_manifest(folder: Path) -> Manifest:
    path = folder / MANIFEST
    try:
        text = path.read_bytes()
    except FileNotFoundError as exc:
        raise JobError(f"{folder} is not a voicekit job folder (no {MANIFEST})") from exc
    except OSError as exc:
        raise os_error(exc, JobError, f"cannot read the job manifest {path}") from exc
    return Manifest.from_json(text, str(path))


def read_segment(folder: Path, digest: str) -> Segment | None:
    """A finished segment, or None when it is missing or damaged (then it is redone).

    Damage is a torn file, a bad zip CRC (numpy reads the whole member, and zipfile
    checks it), lengths that do not add up, or samples that do not match the CRC-32
    stored beside them. Segments from before the CRC-32 was stored are checked by
    the rest.
    """
    path = folder / SEGMENTS / f"{digest}.npz"
    try:
        with np.load(path) as data:
            segment = Segment(pcm=data["pcm"], lengths=data["lengths"])
            stored = int(data["crc32"]) if "crc32" in data.files else None
    except (FileNotFoundError, OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None
    if segment.pcm.dtype != np.int16 or int(segment.lengths.sum()) != len(segment.pcm):
        return None
    if stored is not None and stored != pcm_checksum(segment.pcm):
        return None
    return segment


def verify_segment(folder: Path, digest: str) -> int | None:
    """Samples in a whole, undamaged segment; None when it must be made again.

    Reads the whole segment (one bucket, a few seconds of audio): about as fast as
    the disk, which is what resume pays to never trust a damaged body.
    """
    segment = read_segment(folder, digest)
    return None if segment is None else len(segment.pcm)


def segment_lengths(folder: Path, digest: str) -> np.ndarray | None:
    """Sentence lengths of a segment without reading its audio (npz members load lazily)."""
    path = folder / SEGMENTS / f"{digest}.npz"
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
                f"segment {digest} in {folder} is missing or damaged",
                hint="rerun the synth command: it makes missing and damaged segments again",
            )
        yield segment
