"""What a run reports: progress events while it works, and the result at the end.

:class:`Tally` keeps the counts a run's events are made from (buckets done and
resumed, audio made, the pace behind the ETA), so the pipeline only says what
happened. The audio it counts is what the file will hold: each bucket's sentences,
the pauses between them and the pause before the bucket, once for every place the
bucket's text is read.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from voicekit.synth.assemble import pause_before
from voicekit.synth.job import Job
from voicekit.system.monitor import MemoryStats
from voicekit.text.sentences import Bucket

if TYPE_CHECKING:
    from voicekit.synth.plan import Plan

Phase = Literal["load", "synth", "assemble", "done"]


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
    loudness: dict[str, float] | None = None
    """target_lufs, and integrated_lufs, lra, true_peak_dbtp as measured; None: --loudness 0."""
    stages: dict[str, float] = field(default_factory=dict)
    """The wall time shared among the stages (``StageClock.summary``): they add up to it."""
    pieces: int | None = None
    """Pieces the output was made from beside the synthesis (None: one encode after it)."""
    pieces_resumed: int | None = None
    """Of those, pieces a stopped run had finished, used again."""
    stage_busy: dict[str, float] = field(default_factory=dict)
    """Seconds each stage ran, summed over threads and processes: above the wall time
    where stages overlap (encoding beside synthesis, phonemizing ahead)."""
    workers: int = 0
    """Synthesis processes this run used: 1 in-process, N with --workers; 0: nothing to make."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["x_realtime"] = None if not self.rtf else round(1 / self.rtf, 2)
        return data


SYNTHESIS_STAGES = ("phonemize", "acoustic", "vocoder", "checkpoint")
STAGES = ("text", "load", *SYNTHESIS_STAGES, "encode", "join")


class StageClock:
    """Where a run's time goes (``--json``'s ``stages``), counted two ways.

    *Busy* seconds are what each stage ran, in whatever thread or worker process;
    stages that overlap count in full. *Wall* seconds share the run's own time
    among the stages, so they add up to its wall time: the synthesis loop's time
    is shared among the synthesis stages in proportion to their busy seconds
    (phonemizing ahead and the network overlap, so no other split is exact);
    encoding counts what the run waited for it after synthesis, not what ran beside.
    """

    def __init__(self) -> None:
        self.busy: defaultdict[str, float] = defaultdict(float)
        self.wall: defaultdict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.busy[stage] += seconds

    def merge(self, timings: Mapping[str, float]) -> None:
        for stage, seconds in timings.items():
            self.add(stage, seconds)

    @contextmanager
    def busy_in(self, stage: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(stage, time.perf_counter() - began)

    @contextmanager
    def waiting(self, stage: str, *, busy: bool = False) -> Iterator[None]:
        """The run's own thread spends this block on ``stage`` (``busy``: it is the one
        doing the work, so it counts as busy too)."""
        began = time.perf_counter()
        try:
            yield
        finally:
            spent = time.perf_counter() - began
            self.wall[stage] += spent
            if busy:
                self.add(stage, spent)

    def synthesis(self, seconds: float) -> None:
        """Share the synthesis loop's ``seconds`` among its stages by their busy time."""
        with self._lock:
            busy = {s: self.busy.get(s, 0.0) for s in SYNTHESIS_STAGES}
        total = sum(busy.values())
        for stage, spent in busy.items():
            self.wall[stage] += seconds * spent / total if total else seconds / len(busy)

    def summary(self, wall: float) -> tuple[dict[str, float], dict[str, float]]:
        """(stages, busy): every stage, then ``other`` so that stages add up to ``wall``."""
        stages = {s: round(self.wall.get(s, 0.0), 3) for s in STAGES}
        stages["other"] = round(max(0.0, wall - sum(stages.values())), 3)
        with self._lock:
            busy = {s: round(v, 3) for s, v in self.busy.items()}
        return stages, busy


@dataclass
class Progress:
    phase: Phase
    buckets_total: int
    buckets_done: int = 0
    """Finished buckets, resumed ones included."""
    buckets_resumed: int = 0
    bucket_id: str | None = None
    chapter_title: str | None = None
    sentence: str | None = None
    """The start of the bucket's first sentence (what the voice is saying), shortened."""
    audio_seconds: float = 0.0
    """Audio finished so far, resumed included, with the pauses the file will have."""
    elapsed: float = 0.0
    rtf: float | None = None
    eta: float | None = None
    memory: MemoryStats | None = None
    message: str | None = None
    result: RunResult | None = None
    warnings: list[str] = field(default_factory=list)
    encoded_seconds: float | None = None
    """While encoding ("assemble"): seconds of audio handed to the encoder so far."""
    encode_speed: float | None = None
    """While encoding: seconds of audio encoded per second of wall time."""
    pieces: tuple[int, int] | None = None
    """Pieces of the output encoded, and cut so far (``synth/finish``): while synthesising
    too, since pieces are encoded beside it; None when the output is one encode."""
    gain_wait: tuple[float, float] | None = None
    """While pieces wait for the loudness gain (``Finisher.gain_wait``): seconds of the
    book's start made, and the seconds the gain is measured on."""


@dataclass
class Tally:
    """Where a run stands: what the job folder held, and what this run has made since."""

    total: int
    occurrences: Counter[str]
    pending: list[Bucket]
    """Buckets to make, each text once (a repeated one is made once and used again)."""
    resumed: int
    resumed_audio: float
    rate: int
    extra: dict[str, int]
    """Samples of silence each bucket text brings to the file, over all its places."""
    started: float
    done: int = 0
    new_audio: float = 0.0
    synth_seconds: float = 0.0
    chars_left: int = 0
    workers: int = 0
    """Synthesis processes (synth/workers.py); 0 until synthesis starts."""
    _synth_start: float = 0.0
    _window: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=12))
    clock: StageClock = field(default_factory=lambda: StageClock())
    """Where this run's time goes."""
    pieces: tuple[int, int] | None = None
    """The output's pieces, and how many a stopped run had finished (``synth/finish``)."""

    @classmethod
    def of(
        cls,
        plan: Plan,
        job: Job,
        rate: int,
        started: float,
        silences: Mapping[str, float] | None = None,
    ) -> Tally:
        """Check the job's segments (a damaged one is deleted, to be made again).

        ``silences`` (the manifest's) adds the pauses to the audio figures, so they
        end at the length of the file; without it only speech is counted.
        """
        finished = job.finished([b.hash for b in plan.buckets])  # hash -> samples
        pending: dict[str, Bucket] = {}
        for bucket in plan.buckets:
            if bucket.hash not in finished:
                pending.setdefault(bucket.hash, bucket)
        resumed = sum(1 for b in plan.buckets if b.hash in finished)
        occurrences = Counter(b.hash for b in plan.buckets)
        extra = _silence_samples(plan.buckets, silences, rate) if silences else {}
        resumed_samples = sum(
            occurrences[h] * samples + extra.get(h, 0) for h, samples in finished.items()
        )
        return cls(
            total=len(plan.buckets),
            occurrences=occurrences,
            pending=list(pending.values()),
            resumed=resumed,
            resumed_audio=resumed_samples / rate,
            rate=rate,
            extra=extra,
            started=started,
            done=resumed,
        )

    def begin_synthesis(self) -> None:
        self._synth_start = time.monotonic()
        self.chars_left = sum(b.chars for b in self.pending)
        self._window.append((self._synth_start, self.chars_left))

    def add(self, bucket: Bucket, samples: int) -> None:
        count = self.occurrences[bucket.hash]  # same text twice: made once, read twice
        self.done += count
        self.new_audio += (count * samples + self.extra.get(bucket.hash, 0)) / self.rate
        self.chars_left -= bucket.chars
        now = time.monotonic()
        self._window.append((now, self.chars_left))
        self.synth_seconds = now - self._synth_start

    def progress(
        self, phase: Phase, memory: MemoryStats, *, bucket: Bucket | None = None, **kw: Any
    ) -> Progress:
        synthesizing = phase == "synth"
        return Progress(
            phase,
            self.total,
            self.total if phase == "assemble" else min(self.done, self.total),
            self.resumed,
            bucket_id=bucket.id if bucket else None,
            sentence=opening(bucket.sentences[0]) if bucket and bucket.sentences else None,
            audio_seconds=self.resumed_audio + self.new_audio,
            elapsed=time.monotonic() - self.started,
            rtf=self.synth_seconds / self.new_audio if synthesizing and self.new_audio else None,
            eta=_eta(self._window, self.chars_left) if synthesizing else None,
            memory=memory,
            **kw,
        )

    def encoding(
        self,
        memory: MemoryStats,
        *,
        message: str,
        encoded: float,
        total: float,
        speed: float,
        pieces: tuple[int, int] | None = None,
        gain_wait: tuple[float, float] | None = None,
    ) -> Progress:
        """While encoding: ``encoded`` of ``total`` seconds of audio, ``speed`` x real time
        (0: not known yet); ``pieces`` done and in all, when the book is encoded in pieces."""
        return Progress(
            "assemble",
            self.total,
            self.total,
            self.resumed,
            audio_seconds=total,
            elapsed=time.monotonic() - self.started,
            eta=(total - encoded) / speed if speed else None,
            memory=memory,
            message=message,
            encoded_seconds=encoded,
            encode_speed=speed or None,
            pieces=pieces,
            gain_wait=gain_wait,
        )


def opening(sentence: str, limit: int = 48) -> str:
    """The start of a sentence, cut at a word and marked with an ellipsis if it goes on."""
    text = " ".join(sentence.split())
    if len(text) <= limit:
        return text
    cut = text[: limit + 1].rsplit(" ", 1)[0] if " " in text[: limit + 1] else text[:limit]
    return cut.rstrip(" ,;:.-") + "…"


def _silence_samples(
    buckets: Sequence[Bucket], silences: Mapping[str, float], rate: int
) -> dict[str, int]:
    """Samples of pause each bucket text adds to the file, summed over every place it is read.

    The same rounding as the assembly (``synth/assemble``): the pause before a bucket, and
    a sentence pause between its sentences.
    """
    sentence_gap = round(silences["sentence"] * rate)
    extra: Counter[str] = Counter()
    prev: tuple[int, int] | None = None
    for bucket in buckets:
        here = (bucket.chapter, bucket.paragraph)
        extra[bucket.hash] += round(pause_before(silences, prev, here) * rate)
        extra[bucket.hash] += sentence_gap * max(len(bucket.sentences) - 1, 0)
        prev = here
    return dict(extra)


def _eta(window: deque[tuple[float, int]], chars_left: int) -> float | None:
    """Seconds left at the pace of the last few buckets."""
    if len(window) < 2 or chars_left <= 0:
        return 0.0 if chars_left <= 0 else None
    (t0, c0), (t1, c1) = window[0], window[-1]
    if t1 <= t0 or c0 <= c1:
        return None
    return chars_left / ((c0 - c1) / (t1 - t0))
