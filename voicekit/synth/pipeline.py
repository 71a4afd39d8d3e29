"""The engine: plan a book, stream its buckets through the voice, checkpoint, assemble.

The engine never renders anything: ``Synthesizer.run`` yields ``Progress`` events
and the CLI draws them.
"""

from __future__ import annotations

import hashlib
import json
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np

from voicekit.backends.base import Backend, Utterance, create_backend, resolve_scales
from voicekit.backends.memory import fit_batch
from voicekit.backends.voices import Voice, load_voice
from voicekit.errors import OutputError
from voicekit.formats.assemble import build_timeline, float_to_pcm16, stream_pcm
from voicekit.formats.images import IMAGE_EXTENSIONS
from voicekit.formats.output import (
    EncodeOptions,
    check_output,
    check_target,
    clean_partials,
    write_atomic,
)
from voicekit.settings import SynthSettings
from voicekit.synth.job import Job, completed_output, verify_segment
from voicekit.synth.plan import Plan, audio_fingerprint, build_plan, silences
from voicekit.system.devices import DeviceChoice, choose_device, gpu_probe_for
from voicekit.system.monitor import MemoryMonitor, MemoryStats
from voicekit.text.model import Book
from voicekit.text.sentences import Bucket

Stage = Literal["load", "synth", "assemble", "done"]


@dataclass
class RunResult:
    """What a finished run reports (``--json`` prints it)."""

    output: str
    format: str
    audio_seconds: float
    wall_seconds: float
    synth_seconds: float
    rtf: float | None
    """Synthesis seconds per second of new audio (lower is faster); None if all resumed."""
    peak_rss_mb: float
    mean_rss_mb: float
    peak_gpu_mb: float | None
    buckets: int
    buckets_synthesized: int
    buckets_resumed: int
    buckets_repeated: int
    """Buckets whose text another bucket already says ("Oh dear!"): made once, used again."""
    device: str
    backend: str
    chapters: int
    job_dir: str | None
    """Kept job folder (``--keep-work``), else None."""
    already_complete: bool = False
    """The output was already this job's finished work (a run stopped after writing it)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["x_realtime"] = None if not self.rtf else round(1 / self.rtf, 2)
        return data


@dataclass
class Progress:
    stage: Stage
    buckets_total: int
    buckets_done: int = 0
    """Finished buckets, resumed ones included."""
    buckets_resumed: int = 0
    bucket_id: str | None = None
    chapter_title: str | None = None
    audio_seconds: float = 0.0
    """Audio finished so far, resumed included."""
    elapsed: float = 0.0
    rtf: float | None = None
    eta: float | None = None
    memory: MemoryStats | None = None
    message: str | None = None
    result: RunResult | None = None
    warnings: list[str] = field(default_factory=list)


def default_job_dir(output: Path) -> Path:
    return output.with_name(output.name + ".voicekit-job")


class Synthesizer:
    """One voice on one device, shared by every book of a batch."""

    def __init__(
        self,
        settings: SynthSettings,
        *,
        choice: DeviceChoice | None = None,
        voice: Voice | None = None,
    ) -> None:
        self.settings = settings.validate()
        self.voice = voice or load_voice(settings.voice)
        self.scales = resolve_scales(self.voice, self.settings)
        self._choice = choice
        """The device and backend (``profiles.resolve_settings`` chose them); else chosen once."""
        self._backend: Backend | None = None
        self.memory_note = ""
        """Set when the batch was lowered to fit the device's memory."""

    @property
    def choice(self) -> DeviceChoice:
        if self._choice is None:
            self._choice = choose_device(self.settings.device, self.settings.backend)
        return self._choice

    def plan(self, book: Book) -> Plan:
        s = self.scales
        fingerprint = audio_fingerprint(
            self.voice.sha256,
            self.choice.backend,
            self.settings,
            (s.noise_scale, s.length_scale, s.noise_w),
            s.speaker,
        )
        return build_plan(
            book,
            self.settings,
            language=self.voice.language,
            fingerprint=fingerprint,
            length_scale=s.length_scale,
        )

    def backend(self) -> Backend:
        if self._backend is None:
            # Refuse or shrink before loading rather than run out half-way through a book.
            # batch_size is not in the audio fingerprint, so lowering it keeps resume exact.
            batch, self.memory_note = fit_batch(
                self.settings, self.voice, self.choice.device, self.choice.backend
            )
            settings = self.settings
            if self.memory_note:
                settings = settings.replace(batch_size=batch)
            self._backend = create_backend(
                self.choice.backend, self.voice, settings, self.choice.device
            )
        return self._backend

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None

    # ------------------------------------------------------------------------------
    def run(
        self,
        plan: Plan,
        output: Path,
        *,
        fmt: str,
        job_dir: Path | None = None,
        restart: bool = False,
        keep_work: bool = False,
        force: bool = False,
        options: EncodeOptions | None = None,
    ) -> Iterator[Progress]:
        """Synthesize what is missing, then write ``output``; yields progress throughout."""
        started = time.monotonic()
        folder = job_dir or default_job_dir(output)
        protect = (plan.book.source,) if plan.book.source else ()
        check_target(output, protect)
        manifest = self._manifest(plan, output)
        key = _plan_key(manifest, fmt, plan.book.meta.cover)
        if not force and not restart:
            record = completed_output(folder, output)
            if record is not None and record.get("plan") == key:
                yield self._already_complete(plan, output, fmt, folder, keep_work, started)
                return
        check_output(output, force, protect)
        job = Job.open(folder, restart=restart)
        total = len(plan.buckets)
        try:
            job.forget_output()  # until this run renames its output into place
            clean_partials(output)
            if plan.book.meta.cover and manifest["meta"]["cover"]:
                job.write_cover(manifest["meta"]["cover"], plan.book.meta.cover)
            job.write_manifest(manifest)
            rate = self.voice.sample_rate
            finished: dict[str, int] = {}  # hash -> samples, for segments already on disk
            for bucket in plan.buckets:
                if bucket.hash not in finished and job.has(bucket.hash):
                    samples = verify_segment(job.folder, bucket.hash)
                    if samples is None:  # torn or damaged (power loss, bad disk): redo it
                        job.segment_path(bucket.hash).unlink(missing_ok=True)
                    else:
                        finished[bucket.hash] = samples
            resumed = sum(1 for b in plan.buckets if b.hash in finished)
            resumed_audio = sum(finished.values()) / rate
            pending: list[Bucket] = []
            queued: set[str] = set()
            for bucket in plan.buckets:
                if bucket.hash not in finished and bucket.hash not in queued:
                    pending.append(bucket)
                    queued.add(bucket.hash)
            occurrences = Counter(b.hash for b in plan.buckets)
            notes = list(self.choice.notes)
            monitor = MemoryMonitor(
                gpu_probe=gpu_probe_for(self.choice.device), device=self.choice.device
            ).start()
            done = resumed
            new_audio = 0.0
            synth_seconds = 0.0
            try:
                if pending:
                    yield Progress(
                        "load",
                        total,
                        done,
                        resumed,
                        audio_seconds=resumed_audio,
                        elapsed=time.monotonic() - started,
                        memory=monitor.stats,
                        message=f"loading {self.voice.name} on {self.choice.device} "
                        f"({self.choice.backend})",
                        warnings=notes,
                    )
                    backend = self.backend()
                    if self.memory_note:
                        monitor.warn(self.memory_note)
                    synth_start = time.monotonic()
                    window: deque[tuple[float, int]] = deque(maxlen=12)
                    chars_left = sum(b.chars for b in pending)
                    window.append((synth_start, chars_left))
                    chapter_titles = {int(k): v["title"] for k, v in manifest["chapters"].items()}
                    for bucket, samples in self._synthesize(backend, pending, job):
                        done += occurrences[bucket.hash]  # same text twice: made once
                        new_audio += samples / rate
                        chars_left -= bucket.chars
                        now = time.monotonic()
                        window.append((now, chars_left))
                        synth_seconds = now - synth_start
                        yield Progress(
                            "synth",
                            total,
                            min(done, total),
                            resumed,
                            bucket_id=bucket.id,
                            chapter_title=chapter_titles.get(bucket.chapter),
                            audio_seconds=resumed_audio + new_audio,
                            elapsed=now - started,
                            rtf=synth_seconds / new_audio if new_audio else None,
                            eta=_eta(window, chars_left),
                            memory=monitor.stats,
                            warnings=monitor.take_warnings(),
                        )
                yield Progress(
                    "assemble",
                    total,
                    total,
                    resumed,
                    audio_seconds=resumed_audio + new_audio,
                    elapsed=time.monotonic() - started,
                    memory=monitor.stats,
                    message=f"writing {output.name}",
                )
                timeline = build_timeline(job.folder, manifest)
                record = {
                    "plan": key,
                    "format": fmt,
                    "audio_seconds": round(timeline.seconds, 3),
                    "chapters": len(timeline.chapters),
                    "buckets": total,
                }
                try:
                    write_atomic(
                        output,
                        fmt,
                        timeline,
                        stream_pcm(job.folder, manifest),
                        self._encode_options(plan, job, options, protect),
                        before_replace=lambda tmp: job.record_output(output, tmp, record),
                    )
                except OutputError as exc:
                    if isinstance(exc.__cause__, OSError):  # disk full...: the work is not lost
                        _note_kept(exc)
                    raise
            finally:
                stats = monitor.stop()
            kept = None
            if keep_work:
                job.prune({b.hash for b in plan.buckets})
                job.forget_output()  # a kept job is for the next run, not a finished one
                kept = str(job.folder)
            else:
                job.remove()
            result = RunResult(
                output=str(output),
                format=fmt,
                audio_seconds=round(timeline.seconds, 3),
                wall_seconds=round(time.monotonic() - started, 3),
                synth_seconds=round(synth_seconds, 3),
                rtf=round(synth_seconds / new_audio, 4) if new_audio else None,
                peak_rss_mb=round(stats.peak_rss_mb, 1),
                mean_rss_mb=round(stats.mean_rss_mb, 1),
                peak_gpu_mb=None if stats.peak_gpu_mb is None else round(stats.peak_gpu_mb, 1),
                buckets=total,
                buckets_synthesized=len(pending),
                buckets_resumed=resumed,
                buckets_repeated=total - resumed - len(pending),
                device=self.choice.device,
                backend=self.choice.backend,
                chapters=len(timeline.chapters),
                job_dir=kept,
            )
            yield Progress(
                "done",
                total,
                total,
                resumed,
                audio_seconds=timeline.seconds,
                elapsed=result.wall_seconds,
                rtf=result.rtf,
                memory=stats,
                result=result,
            )
        finally:
            job.close()

    # ------------------------------------------------------------------------------
    def _synthesize(
        self, backend: Backend, pending: list[Bucket], job: Job
    ) -> Iterator[tuple[Bucket, int]]:
        """Run buckets through the voice, write each segment; yield (bucket, samples)."""
        per_call = max(1, backend.batch_sentences)
        group: list[tuple[Bucket, list[Utterance | None]]] = []
        for item in _prefetch(self.voice, pending, self.settings.seed):
            group.append(item)
            if sum(len(utts) for _, utts in group) >= per_call:
                yield from self._run_group(backend, group, job)
                group = []
        if group:
            yield from self._run_group(backend, group, job)

    def _run_group(
        self, backend: Backend, group: list[tuple[Bucket, list[Utterance | None]]], job: Job
    ) -> Iterator[tuple[Bucket, int]]:
        utterances = [u for _, utts in group for u in utts if u is not None]
        audio = iter(backend.synthesize(utterances) if utterances else [])
        for bucket, utts in group:
            pieces = [
                float_to_pcm16(next(audio)) if u is not None else np.zeros(0, np.int16)
                for u in utts
            ]
            pcm = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
            job.write(bucket.hash, pcm, [len(p) for p in pieces])
            yield bucket, len(pcm)
            del pieces, pcm  # nothing of a bucket outlives its checkpoint

    def _already_complete(
        self, plan: Plan, output: Path, fmt: str, folder: Path, keep_work: bool, started: float
    ) -> Progress:
        """A run was stopped between renaming its output into place and removing its job.

        The output is that run's finished work (the job recorded it just before the
        rename), so it is kept, and the stale job folder is removed (or kept, with
        ``--keep-work``), under its lock.
        """
        total = len(plan.buckets)
        with Job.open(folder) as job:
            record = completed_output(folder, output) or {}
            clean_partials(output)
            kept = str(job.folder) if keep_work else None
            if not keep_work:
                job.remove()
        result = RunResult(
            output=str(output),
            format=fmt,
            audio_seconds=float(record.get("audio_seconds", 0.0)),
            wall_seconds=round(time.monotonic() - started, 3),
            synth_seconds=0.0,
            rtf=None,
            peak_rss_mb=0.0,
            mean_rss_mb=0.0,
            peak_gpu_mb=None,
            buckets=total,
            buckets_synthesized=0,
            buckets_resumed=total,
            buckets_repeated=0,
            device=self.choice.device,
            backend=self.choice.backend,
            chapters=int(record.get("chapters", 0)),
            job_dir=kept,
            already_complete=True,
        )
        return Progress(
            "done",
            total,
            total,
            total,
            audio_seconds=result.audio_seconds,
            elapsed=result.wall_seconds,
            message=f"{output.name} was already complete",
            result=result,
        )

    def _manifest(self, plan: Plan, output: Path) -> dict[str, Any]:
        meta = plan.book.meta
        cover = None
        if meta.cover:
            cover = f"cover{IMAGE_EXTENSIONS.get(meta.cover_mime, '.jpg')}"
        s = self.settings
        return {
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "output": str(output),
            "source": str(plan.book.source) if plan.book.source else "-",
            "sample_rate": self.voice.sample_rate,
            "voice": {
                "name": self.voice.name,
                "path": str(self.voice.model_path),
                "sha256": self.voice.sha256,
            },
            "fingerprint": plan.fingerprint,
            "settings": asdict(s),
            "silences": silences(s),
            "volume": s.volume,
            "meta": {
                "title": meta.title,
                "authors": meta.authors,
                "language": meta.language or self.voice.language,
                "publisher": meta.publisher,
                "date": meta.date,
                "description": meta.description,
                "cover": cover,
            },
            "chapters": {
                str(i): {"index": c.index, "title": c.title}
                for i, c in enumerate(plan.book.chapters)
                if c.included
            },
            "buckets": [
                {
                    "id": b.id,
                    "hash": b.hash,
                    "chapter": b.chapter,
                    "paragraph": b.paragraph,
                    "sentences": len(b.sentences),
                }
                for b in plan.buckets
            ],
        }

    def _encode_options(
        self, plan: Plan, job: Job, options: EncodeOptions | None, protect: tuple[Path, ...]
    ) -> EncodeOptions:
        if options is not None:
            return replace(options, protect=(*options.protect, *protect))
        manifest_meta = job.read_manifest()["meta"]
        cover = job.folder / manifest_meta["cover"] if manifest_meta.get("cover") else None
        return EncodeOptions(
            bitrate=self.settings.bitrate, meta=manifest_meta, cover=cover, protect=protect
        )


def _plan_key(manifest: dict[str, Any], fmt: str, cover: bytes | None) -> str:
    """What the output is made of: the manifest (less its date), the format and the cover."""
    stable = {k: v for k, v in manifest.items() if k != "created"}
    text = json.dumps({"manifest": stable, "format": fmt}, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode())
    digest.update(hashlib.sha256(cover or b"").digest())
    return digest.hexdigest()


def _note_kept(exc: OutputError) -> None:
    """Add "finished buckets are kept" to an output error's hint, once."""
    note = "finished buckets are kept"
    if note not in (exc.hint or ""):
        exc.hint = f"{exc.hint}; {note}" if exc.hint else note


def _eta(window: deque[tuple[float, int]], chars_left: int) -> float | None:
    """Seconds left at the pace of the last few buckets."""
    if len(window) < 2 or chars_left <= 0:
        return 0.0 if chars_left <= 0 else None
    (t0, c0), (t1, c1) = window[0], window[-1]
    if t1 <= t0 or c0 <= c1:
        return None
    return chars_left / ((c0 - c1) / (t1 - t0))


_DONE = object()


def _prefetch(
    voice: Voice, pending: list[Bucket], seed: int, depth: int = 8
) -> Iterator[tuple[Bucket, list[Utterance | None]]]:
    """Phonemize ahead of the voice in a thread, so the GPU does not wait on espeak-ng."""
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for bucket in pending:
                key = int(bucket.hash[:16], 16)
                utts: list[Utterance | None] = []
                for i, sentence in enumerate(bucket.sentences):
                    ids = voice.phoneme_ids(sentence)
                    # BOS, PAD, EOS only: nothing to say (e.g. a lone dash)
                    utts.append(
                        Utterance(np.asarray(ids, dtype=np.int64), (seed, key, i))
                        if len(ids) > 3
                        else None
                    )
                while not stop.is_set():
                    try:
                        out.put((bucket, utts), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            out.put(exc)

    thread = threading.Thread(target=produce, name="voicekit-phonemize", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
