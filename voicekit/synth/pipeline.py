"""The engine: plan a book, stream its buckets through the voice, checkpoint, assemble.

The engine never renders anything: ``Synthesizer.run`` yields ``Progress`` events
and the CLI draws them.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.backends.base import Backend, Utterance, create_backend, resolve_scales
from voicekit.backends.memory import fit_batch
from voicekit.backends.voices import Voice, load_voice
from voicekit.errors import OutputError
from voicekit.formats.chapter_files import write_book
from voicekit.formats.encoders import EncodeOptions
from voicekit.formats.images import IMAGE_EXTENSIONS
from voicekit.formats.output import check_output, check_target, clean_partials
from voicekit.formats.wav import float_to_pcm16
from voicekit.settings import SynthSettings
from voicekit.synth.assemble import build_timeline, stream_pcm
from voicekit.synth.feed import prefetch
from voicekit.synth.job import Job, completed_output
from voicekit.synth.manifest import Manifest, ManifestBucket, ManifestChapter
from voicekit.synth.plan import Plan, audio_fingerprint, build_plan, silences
from voicekit.synth.progress import Progress, RunResult, Tally
from voicekit.system.devices import DeviceChoice, choose_device, gpu_probe_for
from voicekit.system.monitor import MemoryMonitor, MemoryStats
from voicekit.text.model import Book
from voicekit.text.sentences import Bucket


@dataclass(frozen=True)
class RunOptions:
    """How one book's run writes its output and treats its job folder."""

    fmt: str = "wav"
    split: bool = False
    """One file per chapter; the output path is then their playlist."""
    job_dir: Path | None = None
    """The job folder; default: beside the output (``<output>.voicekit-job``)."""
    restart: bool = False
    """Discard the job's finished buckets first."""
    keep_work: bool = False
    """Keep the job folder after success (a re-render then costs only encoding)."""
    force: bool = False
    """Replace an existing output."""
    encode: EncodeOptions | None = None
    """Tags, cover and bitrate; default: the book's own, from the manifest."""


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
        self, plan: Plan, output: Path, options: RunOptions | None = None
    ) -> Iterator[Progress]:
        """Synthesize what is missing, then write ``output``; yields progress throughout."""
        opts = options or RunOptions()
        started = time.monotonic()
        folder = opts.job_dir or default_job_dir(output)
        protect = (plan.book.source,) if plan.book.source else ()
        check_target(output, protect)
        manifest = self._manifest(plan, output)
        key = _plan_key(manifest, opts.fmt, opts.split, plan.book.meta.cover)
        if self._finished_before(folder, output, opts, key):
            yield self._already_complete(plan, output, opts, folder, started)
            return
        check_output(output, opts.force, protect)
        with Job.open(folder, restart=opts.restart) as job:
            self._start_job(job, plan, output, manifest)
            tally = Tally.of(plan, job, self.voice.sample_rate, started)
            monitor = MemoryMonitor(
                gpu_probe=gpu_probe_for(self.choice.device), device=self.choice.device
            ).start()
            try:
                yield from self._synthesize_missing(job, manifest, tally, monitor)
                yield tally.progress("assemble", monitor.stats, message=f"writing {output.name}")
                timeline = self._write_output(job, plan, manifest, output, opts, key, protect)
            finally:
                stats = monitor.stop()
            kept = self._finish_job(job, plan, opts.keep_work)
            yield self._done(plan, output, opts, tally, stats, timeline.seconds,
                             len(timeline.chapters), kept)

    # --- the steps of a run -------------------------------------------------------
    @staticmethod
    def _finished_before(folder: Path, output: Path, opts: RunOptions, key: str) -> bool:
        """Did a run stopped after renaming its output leave exactly this output?"""
        if opts.force or opts.restart:
            return False
        record = completed_output(folder, output)
        return record is not None and record.get("plan") == key

    @staticmethod
    def _start_job(job: Job, plan: Plan, output: Path, manifest: Manifest) -> None:
        job.forget_output()  # until this run renames its output into place
        clean_partials(output)
        if plan.book.meta.cover and manifest.cover:
            job.write_cover(manifest.cover, plan.book.meta.cover)
        job.write_manifest(manifest)

    def _synthesize_missing(
        self, job: Job, manifest: Manifest, tally: Tally, monitor: MemoryMonitor
    ) -> Iterator[Progress]:
        """Load the voice and make every bucket the job folder does not hold yet."""
        if not tally.pending:
            return
        yield tally.progress(
            "load",
            monitor.stats,
            message=f"loading {self.voice.name} on {self.choice.device} ({self.choice.backend})",
            warnings=list(self.choice.notes),
        )
        backend = self.backend()
        if self.memory_note:
            monitor.warn(self.memory_note)
        tally.begin_synthesis()
        for bucket, samples in self._synthesize(backend, tally.pending, job):
            tally.add(bucket, samples)
            title = manifest.chapters[bucket.chapter].title
            yield tally.progress(
                "synth", monitor.stats, bucket=bucket, chapter_title=title,
                warnings=monitor.take_warnings(),
            )  # fmt: skip

    def _write_output(
        self,
        job: Job,
        plan: Plan,
        manifest: Manifest,
        output: Path,
        opts: RunOptions,
        key: str,
        protect: tuple[Path, ...],
    ) -> Any:
        """Assemble the segments into ``output``; the job records it just before the rename."""
        timeline = build_timeline(job.folder, manifest)
        record = {
            "plan": key,
            "format": opts.fmt,
            "audio_seconds": round(timeline.seconds, 3),
            "chapters": len(timeline.chapters),
            "buckets": len(plan.buckets),
        }
        try:
            write_book(
                output,
                opts.fmt,
                timeline,
                stream_pcm(job.folder, manifest),
                self._encode_options(job, manifest, opts.encode, protect),
                split=opts.split,
                before_replace=lambda tmp: job.record_output(output, tmp, record),
            )
        except OutputError as exc:
            if isinstance(exc.__cause__, OSError):  # disk full...: the work is not lost
                _note_kept(exc)
            raise
        return timeline

    @staticmethod
    def _finish_job(job: Job, plan: Plan, keep_work: bool) -> str | None:
        """Remove the job folder, or keep it (``--keep-work``); the kept folder, or None."""
        if not keep_work:
            job.remove()
            return None
        job.prune({b.hash for b in plan.buckets})
        job.forget_output()  # a kept job is for the next run, not a finished one
        return str(job.folder)

    def _done(
        self,
        plan: Plan,
        output: Path,
        opts: RunOptions,
        tally: Tally,
        stats: MemoryStats,
        audio_seconds: float,
        chapters: int,
        kept: str | None,
    ) -> Progress:
        total = len(plan.buckets)
        new_audio, seconds = tally.new_audio, tally.synth_seconds
        result = RunResult(
            output=str(output),
            format=opts.fmt,
            audio_seconds=round(audio_seconds, 3),
            wall_seconds=round(time.monotonic() - tally.started, 3),
            synth_seconds=round(seconds, 3),
            rtf=round(seconds / new_audio, 4) if new_audio else None,
            peak_rss_mb=round(stats.peak_rss_mb, 1),
            mean_rss_mb=round(stats.mean_rss_mb, 1),
            peak_gpu_mb=None if stats.peak_gpu_mb is None else round(stats.peak_gpu_mb, 1),
            buckets=total,
            buckets_synthesized=len(tally.pending),
            buckets_resumed=tally.resumed,
            buckets_repeated=total - tally.resumed - len(tally.pending),
            device=self.choice.device,
            backend=self.choice.backend,
            chapters=chapters,
            job_dir=kept,
        )
        return Progress(
            "done",
            total,
            total,
            tally.resumed,
            audio_seconds=audio_seconds,
            elapsed=result.wall_seconds,
            rtf=result.rtf,
            memory=stats,
            result=result,
        )

    # ------------------------------------------------------------------------------
    def _synthesize(
        self, backend: Backend, pending: list[Bucket], job: Job
    ) -> Iterator[tuple[Bucket, int]]:
        """Run buckets through the voice, write each segment; yield (bucket, samples)."""
        per_call = max(1, backend.batch_sentences)
        group: list[tuple[Bucket, list[Utterance | None]]] = []
        # Two calls deep: the next call is phonemized while this one runs on the device.
        ahead = prefetch(self.voice, pending, self.settings.seed, sentences=2 * per_call)
        for item in ahead:
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
        self, plan: Plan, output: Path, opts: RunOptions, folder: Path, started: float
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
            kept = str(job.folder) if opts.keep_work else None
            if not opts.keep_work:
                job.remove()
        result = RunResult(
            output=str(output),
            format=opts.fmt,
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

    def _manifest(self, plan: Plan, output: Path) -> Manifest:
        meta = plan.book.meta
        cover = f"cover{IMAGE_EXTENSIONS.get(meta.cover_mime, '.jpg')}" if meta.cover else None
        s = self.settings
        return Manifest(
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            output=str(output),
            source=str(plan.book.source) if plan.book.source else "-",
            sample_rate=self.voice.sample_rate,
            voice={
                "name": self.voice.name,
                "path": str(self.voice.model_path),
                "sha256": self.voice.sha256,
            },
            fingerprint=plan.fingerprint,
            settings=asdict(s),
            silences=silences(s),
            volume=s.volume,
            meta={
                "title": meta.title,
                "authors": meta.authors,
                "language": meta.language or self.voice.language,
                "publisher": meta.publisher,
                "date": meta.date,
                "description": meta.description,
            },
            cover=cover,
            chapters={
                i: ManifestChapter(c.index, c.title)
                for i, c in enumerate(plan.book.chapters)
                if c.included
            },
            buckets=[
                ManifestBucket(b.id, b.hash, b.chapter, b.paragraph, len(b.sentences))
                for b in plan.buckets
            ],
        )

    def _encode_options(
        self,
        job: Job,
        manifest: Manifest,
        options: EncodeOptions | None,
        protect: tuple[Path, ...],
    ) -> EncodeOptions:
        if options is not None:
            return replace(options, protect=(*options.protect, *protect))
        cover = job.folder / manifest.cover if manifest.cover else None
        return EncodeOptions(
            bitrate=self.settings.bitrate, meta=dict(manifest.meta), cover=cover, protect=protect
        )


def _plan_key(manifest: Manifest, fmt: str, split: bool, cover: bytes | None) -> str:
    """What the output is made of: the manifest (less its date), the format and the cover."""
    digest = hashlib.sha256(manifest.stable_json().encode())
    digest.update(f"{fmt} split={split}".encode())
    digest.update(hashlib.sha256(cover or b"").digest())
    return digest.hexdigest()


def _note_kept(exc: OutputError) -> None:
    """Add "finished buckets are kept" to an output error's hint, once."""
    note = "finished buckets are kept"
    if note not in (exc.hint or ""):
        exc.hint = f"{exc.hint}; {note}" if exc.hint else note
