"""The engine: plan a book, stream its buckets through the voice, checkpoint, assemble.

The engine never renders anything: ``Synthesizer.run`` yields ``Progress`` events
and the CLI draws them.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Generator, Iterator
from dataclasses import replace
from pathlib import Path

from voicekit.backends.base import Backend, resolve_scales
from voicekit.backends.ort import graphs_for
from voicekit.backends.voices import Voice, load_voice
from voicekit.formats.loudness import LoudnessPlan
from voicekit.formats.output import check_output, check_target, clean_partials
from voicekit.settings import SynthSettings
from voicekit.synth.calls import (
    Result,
    backend_threads,
    bucket_results,
    gather_calls,
    load_backend,
    run_calls,
)
from voicekit.synth.companions import check_companions, write_companions
from voicekit.synth.finish import Finisher
from voicekit.synth.job import Job, completed_output
from voicekit.synth.lanes import Lanes, runs_in_lanes
from voicekit.synth.manifest import Manifest
from voicekit.synth.options import RunOptions, default_job_dir
from voicekit.synth.plan import Plan, audio_fingerprint, build_plan
from voicekit.synth.progress import Progress, RunResult, StageClock, Tally
from voicekit.synth.ranges import range_buckets
from voicekit.synth.workers import WorkerPool, count_calls, feed, phonemizer_count, worker_count
from voicekit.synth.writing import OutputWriter
from voicekit.system.devices import DeviceChoice, choose_device, gpu_probe_for
from voicekit.system.monitor import MemoryMonitor, MemoryStats
from voicekit.system.paths import config_home
from voicekit.text.lexicon import Lexicon, lexicon_paths, load_lexicon
from voicekit.text.model import Book
from voicekit.text.sentences import Bucket


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
        self._threads = 0
        """The inference threads ``_backend`` was loaded with."""
        self.memory_note = ""
        """Set when the batch was lowered to fit the device's memory."""

    @property
    def choice(self) -> DeviceChoice:
        if self._choice is None:
            self._choice = choose_device(self.settings.device, self.settings.backend)
        return self._choice

    def fingerprint(self) -> str:
        """What besides the text decides a bucket's audio (and so its hash) here."""
        s = self.scales
        return audio_fingerprint(
            self.voice.sha256,
            self.choice.backend,
            self.settings,
            (s.noise_scale, s.length_scale, s.noise_w),
            s.speaker,
            graphs_for(self.choice.backend, self.choice.device),
        )

    def plan(self, book: Book) -> Plan:
        began = time.monotonic()
        plan = build_plan(
            book,
            self.settings,
            language=self.voice.language,
            fingerprint=self.fingerprint(),
            length_scale=self.scales.length_scale,
            lexicon=self.lexicon(),
        )
        plan.seconds = time.monotonic() - began
        return plan

    def lexicon(self) -> Lexicon:
        """The user's and ``--lexicon``'s entries for this voice, checked against its phonemes."""
        paths = lexicon_paths(self.settings.lexicon, config_home())
        lexicon = load_lexicon(paths, self.voice.language)
        lexicon.check_phonemes(self.voice.phoneme_symbols, self.voice.name)
        return lexicon

    def backend(self, lanes: int = 1) -> Backend:
        """The loaded backend, for ``lanes`` threads (synth/lanes.py) sharing ``--threads``."""
        choice = self.choice
        threads = backend_threads(self.settings, choice.device, choice.backend, lanes)
        if self._backend is not None and threads != self._threads:
            self.close()  # loaded for another split of --threads
        if self._backend is None:
            self._backend, self.memory_note = load_backend(
                self.settings, self.voice, choice.device, choice.backend, lanes
            )
            self._threads = threads
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
        started = time.monotonic() - plan.seconds  # the book's time includes reading it
        folder = opts.job_dir or default_job_dir(output)
        protect = (plan.book.source,) if plan.book.source else ()
        check_target(output, protect)
        manifest = Manifest.for_plan(plan, output, self.voice, self.settings)
        key = _plan_key(manifest, opts.fmt, opts.split, plan.book.meta.cover)
        if self._finished_before(folder, output, opts, key):
            yield self._already_complete(plan, output, opts, folder, started)
            return
        check_output(output, opts.force, protect)
        check_companions(
            output, opts.captions, opts.readalong, split=opts.split, force=opts.force,
            protect=protect,
        )  # fmt: skip
        with Job.open(folder, restart=opts.restart) as job:
            self._start_job(job, plan, output, manifest)
            tally = Tally.of(plan, job, self.voice.sample_rate, started, manifest.silences)
            tally.clock.wall["text"] = plan.seconds
            tally.clock.add("text", plan.seconds)
            monitor = MemoryMonitor(
                gpu_probe=gpu_probe_for(self.choice.device), device=self.choice.device
            ).start()
            writer = OutputWriter(
                self.settings, job, plan, manifest, output, opts, key, protect, tally, monitor
            )
            finisher = writer.finisher()
            try:
                if finisher is not None:
                    finisher.poll(job.has)  # what a stopped run finished can be encoded now
                yield from self._synthesize_missing(job, manifest, tally, monitor, finisher)
                yield tally.progress("assemble", monitor.stats, message=f"writing {output.name}")
                if finisher is not None:
                    timeline, loudness = yield from writer.join(finisher)
                else:
                    with tally.clock.waiting("encode", busy=True):
                        timeline, loudness = yield from writer.write()
            finally:
                if finisher is not None:
                    finisher.close()
                stats = monitor.stop()
            notes = write_companions(
                job.folder, manifest, plan, timeline, output, opts.captions, opts.readalong,
                fmt=opts.fmt, split=opts.split, readalong_source=opts.readalong_source,
            )  # fmt: skip
            if notes:
                yield tally.progress("assemble", stats, warnings=notes)
            kept = self._finish_job(job, plan, opts.keep_work)
            yield self._done(
                plan,
                output,
                opts,
                tally,
                stats,
                timeline.seconds,
                len(timeline.chapters),
                kept,
                loudness,
            )

    def make_range(
        self, plan: Plan, output: Path, start: int, stop: int, folder: Path, *,
        shared: bool = True, restart: bool = False,
    ) -> Iterator[Progress]:  # fmt: skip
        """Make the buckets of ``plan.buckets[start:stop]`` that ``folder`` lacks, nothing more.

        A range unit of a cluster batch (synth/ranges.py): segments only, no manifest,
        no output. ``shared``: beside other ranges of the book, under the job's shared
        lock (synth/job.py says why that is safe); else alone in a folder of its own,
        which ``restart`` may empty first. The book is assembled later by a normal run,
        which finds these segments and synthesizes nothing. ``output`` only names the
        chapters in the progress events. Yields "load" and "synth" events (none when
        nothing is missing); their audio figures count speech only (the pauses come
        with assembly).
        """
        started = time.monotonic()
        part = replace(plan, buckets=range_buckets(plan.buckets, start, stop))
        with Job.open(folder, restart=restart, shared=shared) as job:
            tally = Tally.of(part, job, self.voice.sample_rate, started)
            manifest = Manifest.for_plan(plan, output, self.voice, self.settings)
            monitor = MemoryMonitor(
                gpu_probe=gpu_probe_for(self.choice.device), device=self.choice.device
            ).start()
            try:
                yield from self._synthesize_missing(job, manifest, tally, monitor)
            finally:
                monitor.stop()

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
        self,
        job: Job,
        manifest: Manifest,
        tally: Tally,
        monitor: MemoryMonitor,
        finisher: Finisher | None = None,
    ) -> Iterator[Progress]:
        """Load the voice and make every bucket the job folder does not hold yet."""
        if not tally.pending:
            return
        calls = count_calls(tally.pending, self.settings.batch_size or 1)
        chars = sum(b.chars for b in tally.pending)
        threads = runs_in_lanes(self.choice.backend, self.choice.device)
        tally.workers = worker_count(
            self.settings, self.choice.device, calls, chars, processes=not threads
        )
        phonemizers = phonemizer_count(self.settings, self.choice.device, len(tally.pending))
        where = f"{self.choice.device} ({self.choice.backend})"
        if tally.workers > 1:
            where += f" in {tally.workers} {'threads' if threads else 'workers'}"
        elif phonemizers > 1:
            where += f", {phonemizers} phonemizer processes"
        yield tally.progress(
            "load",
            monitor.stats,
            message=f"loading {self.voice.name} on {where}",
            warnings=list(self.choice.notes),
        )
        with contextlib.ExitStack() as stack:
            if tally.workers > 1 and not threads:  # synth/workers.py: N processes, a voice each
                with tally.clock.waiting("load", busy=True):
                    pool = stack.enter_context(
                        WorkerPool(self.voice, self.settings, self.choice.device,
                                   self.choice.backend, job.folder, tally.workers)
                    )  # fmt: skip
                    note = pool.start()
                results = pool.results(tally.pending)
            else:
                with tally.clock.waiting("load", busy=True):
                    backend = self.backend(tally.workers)
                if tally.workers > 1:  # synth/lanes.py: N threads over this one voice
                    lanes = stack.enter_context(
                        Lanes(backend, self.voice, self.settings.seed, job.write, tally.workers)
                    )
                    results = lanes.results(tally.pending)
                else:
                    results = self._synthesize(
                        backend, tally.pending, job, tally.clock, phonemizers
                    )
                note = self.memory_note
            # Closed here, under the job's lock, whatever ends the loop: the segment writer
            # stops before the job is let go (a traceback would keep the generator alive).
            stack.enter_context(contextlib.closing(results))
            if note:
                monitor.warn(note)
            tally.begin_synthesis()
            began = time.perf_counter()
            for bucket, samples, timings in results:
                tally.add(bucket, samples)
                tally.clock.merge(timings)
                pieces = wait = None
                if finisher is not None:
                    finisher.poll(job.has)
                    pieces = (finisher.pieces_done, finisher.pieces_known)
                    wait = finisher.gain_wait()
                title = manifest.chapter_title(bucket.chapter)
                yield tally.progress(
                    "synth", monitor.stats, bucket=bucket, chapter_title=title,
                    warnings=monitor.take_warnings(), pieces=pieces, gain_wait=wait,
                )  # fmt: skip
            tally.clock.synthesis(time.perf_counter() - began)

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
        loudness: LoudnessPlan | None = None,
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
            loudness=loudness.to_dict() if loudness else None,
            workers=tally.workers,
        )
        result.stages, result.stage_busy = tally.clock.summary(result.wall_seconds)
        if tally.pieces is not None:
            result.pieces, result.pieces_resumed = tally.pieces
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
        self,
        backend: Backend,
        pending: list[Bucket],
        job: Job,
        clock: StageClock,
        phonemizers: int = 1,
    ) -> Generator[Result, None, None]:
        """Run buckets through the voice, write each segment; yield (bucket, samples, timings)."""
        per_call = max(1, backend.batch_sentences)
        # Two calls deep: the next call is phonemized while this one runs on the device.
        ahead = feed(
            self.voice, pending, self.settings.seed, 2 * per_call, phonemizers, clock=clock.add
        )
        # synth/calls.py, shared with the workers: segments written in a thread, and call
        # N+1 submitted before N's audio is taken where the backend queues its work
        calls = run_calls(backend, gather_calls(ahead, per_call), job.write)
        with contextlib.closing(calls):  # closing this generator stops the writer at once
            yield from bucket_results(calls)

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


def _plan_key(manifest: Manifest, fmt: str, split: bool, cover: bytes | None) -> str:
    """What the output is made of: the manifest (less its date), the format and the cover."""
    digest = hashlib.sha256(manifest.stable_json().encode())
    digest.update(f"{fmt} split={split}".encode())
    digest.update(hashlib.sha256(cover or b"").digest())
    return digest.hexdigest()
