"""The end of a run: the job's audio into the output file, while the panel keeps moving.

Three ways (``synth/finish.piece_mode``): M4B is joined by stream copy from pieces
encoded beside the synthesis; the other formats, with the loudness on, are
encoded by one encoder from pieces that went through the loudness chain beside
the synthesis; with it off, one encoder reads the segments after the synthesis.
Either way the job records the output just before it is renamed into place, and
an OS error keeps the finished work.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import OutputError
from voicekit.formats.chapter_files import write_book
from voicekit.formats.encoders import EncodeOptions, RoomTone
from voicekit.formats.loudness import LoudnessPlan, normalise
from voicekit.formats.output import write_atomic
from voicekit.formats.pieces import join_pieces
from voicekit.formats.timeline import Timeline
from voicekit.settings import SynthSettings
from voicekit.synth.assemble import build_timeline, stream_pcm
from voicekit.synth.background import Background
from voicekit.synth.finish import ACCEPT_LU, ENCODED, Finisher, piece_mode, read_pieces
from voicekit.synth.job import Job
from voicekit.synth.manifest import Manifest
from voicekit.synth.options import RunOptions
from voicekit.synth.plan import Plan
from voicekit.synth.progress import Progress, Tally
from voicekit.system.monitor import MemoryMonitor

Written = Generator[Progress, None, tuple[Timeline, LoudnessPlan | None]]
"""Yields progress while it writes; returns the book's timeline and loudness."""


@dataclass
class OutputWriter:
    """Writes one run's output from its job folder."""

    settings: SynthSettings
    job: Job
    plan: Plan
    manifest: Manifest
    output: Path
    opts: RunOptions
    key: str
    """What the output is made of (``pipeline._plan_key``), for the job's record."""
    protect: tuple[Path, ...]
    tally: Tally
    monitor: MemoryMonitor

    def finisher(self) -> Finisher | None:
        """Makes pieces of the output while the book is synthesised (``synth/finish``)."""
        options = self.encode_options()
        target = self.settings.loudness or None
        rate = self.manifest.sample_rate
        mode = piece_mode(self.opts.fmt, self.opts.split, options, rate, target is not None)
        if mode is None:
            return None
        return Finisher(
            self.job,
            self.manifest,
            self.opts.fmt,
            options,
            target_lufs=target,
            true_peak_dbtp=self.settings.true_peak,
            mode=mode,
        )

    def _record(self, timeline: Timeline) -> dict[str, Any]:
        return {
            "plan": self.key,
            "format": self.opts.fmt,
            "audio_seconds": round(timeline.seconds, 3),
            "chapters": len(timeline.chapters),
            "buckets": len(self.plan.buckets),
        }

    def write(self) -> Written:
        """Assemble the segments into the output with one encoder.

        Loudness first: one gain for the whole book, measured over the PCM on disk.
        Then the encoder runs in a worker thread (``synth/background``) while this
        yields how much of the audio it has taken and how fast, every half second.
        """
        timeline = build_timeline(self.job.folder, self.manifest)
        pcm, loudness = self._normalised()
        return (yield from self._encode(timeline, pcm, loudness))

    def _encode(
        self, timeline: Timeline, pcm: Iterable[np.ndarray], loudness: LoudnessPlan | None
    ) -> Written:
        """``pcm`` (the whole book, normalised) into the output by one encoder."""
        job, opts, output = self.job, self.opts, self.output
        record = self._record(timeline)
        encode_options = self.encode_options()
        encode = Background(
            lambda pcm: write_book(
                output,
                opts.fmt,
                timeline,
                pcm,
                encode_options,
                split=opts.split,
                before_replace=lambda tmp: job.record_output(output, tmp, record),
            ),
            pcm,
        )
        began = time.monotonic()

        def report() -> Progress:
            encoded = encode.samples / timeline.sample_rate
            return self.tally.encoding(
                self.monitor.stats,
                # the encoder has all the audio, and finishes the file
                message=f"{'finishing' if encode.fed else 'writing'} {output.name}",
                encoded=encoded,
                total=timeline.seconds,
                speed=_speed(encoded, (encode.fed or time.monotonic()) - began),
            )

        with _kept_on_os_error():
            yield from encode.ticks(report)
        return timeline, loudness

    def join(self, finisher: Finisher) -> Written:
        """Wait for the last pieces (all cores now), then join them into the output."""
        tally, output = self.tally, self.output

        def report(message: str) -> Progress:
            pieces = (finisher.pieces_done, finisher.pieces_known)
            wait = finisher.gain_wait()
            if finisher.mode != ENCODED:  # the encoder's bar comes after, from zero
                return tally.progress(
                    "assemble", self.monitor.stats, message=message, pieces=pieces,
                    gain_wait=wait,
                )  # fmt: skip
            encoded, speed = finisher.encoded_seconds()
            return tally.encoding(
                self.monitor.stats,
                message=message,
                encoded=encoded,
                total=finisher.layout.end / self.manifest.sample_rate,
                speed=speed,
                pieces=pieces,
                gain_wait=wait,
            )

        doing = "encoding" if finisher.mode == ENCODED else "normalising the loudness of"
        with tally.clock.waiting("encode"):
            joined = yield from finisher.finish(lambda: report(f"{doing} {output.name}"))
        tally.clock.add("encode", finisher.busy_seconds)
        tally.pieces = (len(joined.pieces), finisher.resumed)
        if finisher.redone and joined.loudness is not None:
            yield tally.progress("assemble", self.monitor.stats, warnings=[
                f"the gain found on the first two minutes missed the whole book's loudness "
                f"by more than {ACCEPT_LU} LU: encoded again with {joined.loudness.gain_db:+.1f} dB"
            ])  # fmt: skip
        if finisher.mode != ENCODED:  # one encoder reads the normalised pieces
            with tally.clock.waiting("join", busy=True):
                written = yield from self._encode(
                    joined.timeline,
                    read_pieces(joined.pieces, self.manifest.sample_rate),
                    joined.loudness,
                )
            self._keep_pieces(finisher)
            return written
        record = self._record(joined.timeline)

        def join(path: Path, timeline: Timeline, _pcm: Any, options: EncodeOptions) -> None:
            join_pieces(path, joined.pieces, timeline, options, bounds=joined.bounds)

        def before_replace(tmp: Path) -> None:
            self.job.record_output(output, tmp, record)

        work = Background(
            lambda pcm: write_atomic(
                output, self.opts.fmt, joined.timeline, pcm, self.encode_options(),
                encoder=join, before_replace=before_replace,
            ),
            [],
        )  # fmt: skip
        with _kept_on_os_error(), tally.clock.waiting("join", busy=True):
            yield from work.ticks(lambda: report(f"joining {len(joined.pieces)} pieces"))
        self._keep_pieces(finisher)
        return joined.timeline, joined.loudness

    def _keep_pieces(self, finisher: Finisher) -> None:
        if self.opts.keep_work:  # a kept job keeps this output's pieces, no others
            self.job.prune_pieces(finisher.keep())

    def _normalised(self) -> tuple[Any, LoudnessPlan | None]:
        """The job's PCM brought to ``--loudness`` (None: off) under ``--true-peak``."""
        return normalise(
            lambda: stream_pcm(self.job.folder, self.manifest),
            self.manifest.sample_rate,
            target_lufs=self.settings.loudness or None,
            true_peak_dbtp=self.settings.true_peak,
            lossy=self.opts.fmt not in ("wav", "flac"),
        )

    def encode_options(self) -> EncodeOptions:
        s = self.settings
        delivery: dict[str, Any] = {  # --sample-rate and room tone (ACX)
            "sample_rate": s.sample_rate or None,
            "room_tone": RoomTone(s.room_tone_head, s.room_tone_tail, s.room_tone_level or None)
            if s.room_tone_head or s.room_tone_tail or s.room_tone_level
            else None,
        }
        options = self.opts.encode
        if options is not None:
            return replace(options, protect=(*options.protect, *self.protect), **delivery)
        cover = self.job.folder / self.manifest.cover if self.manifest.cover else None
        return EncodeOptions(
            bitrate=s.bitrate,
            meta=dict(self.manifest.meta),
            cover=cover,
            protect=self.protect,
            **delivery,
        )


def _speed(seconds: float, wall: float) -> float:
    return seconds / wall if wall > 0 and seconds > 0 else 0.0


@contextlib.contextmanager
def _kept_on_os_error() -> Iterator[None]:
    """An output error caused by the OS (disk full...) says the finished work is kept."""
    try:
        yield
    except OutputError as exc:
        note = "finished buckets are kept"
        if isinstance(exc.__cause__, OSError) and note not in (exc.hint or ""):
            exc.hint = f"{exc.hint}; {note}" if exc.hint else note
        raise
