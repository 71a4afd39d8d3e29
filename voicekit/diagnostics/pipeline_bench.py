"""``voicekit bench --pipeline``: the whole ``synth`` run on the bench text, stage by stage.

The variant bench times the network alone. This runs what a user runs (plan,
phonemize, the network, checkpoints, the encoder and the join) on the bench text
cut into chapters, in a temporary folder, and reports the run summary's
``stages``: where the wall time went, and how busy each stage was beside the others.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voicekit.profiles import Resolved
from voicekit.synth.pipeline import RunOptions, Synthesizer
from voicekit.synth.plan import CHARS_PER_AUDIO_SECOND
from voicekit.text.model import Book, BookMeta, Chapter

CHAPTERS = 6
"""The bench book's chapters: enough for the encoder's pieces to overlap the synthesis."""


@dataclass
class PipelineBench:
    format: str
    device: str
    backend: str
    audio_seconds: float
    wall_seconds: float
    x_realtime: float
    stages: dict[str, float]
    stage_busy: dict[str, float]
    workers: int | None
    peak_rss_mb: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_book(sentences: list[str], seconds: float, chapters: int = CHAPTERS) -> Book:
    """About ``seconds`` of audio from ``sentences`` (cycled), in ``chapters`` chapters."""
    budget = max(1.0, seconds) * CHARS_PER_AUDIO_SECOND
    picked: list[str] = []
    chars = 0
    while chars < budget:
        text = sentences[len(picked) % len(sentences)]
        picked.append(text)
        chars += len(text)
    count = max(1, min(chapters, len(picked)))
    size = -(-len(picked) // count)
    parts = [picked[i : i + size] for i in range(0, len(picked), size)]
    return Book(
        BookMeta(title="voicekit bench"),
        [
            Chapter(n, f"Part {n}", [" ".join(part[j : j + 3]) for j in range(0, len(part), 3)])
            for n, part in enumerate(parts, 1)
        ],
    )


def run_pipeline_bench(
    resolved: Resolved, sentences: list[str], *, seconds: float, fmt: str = "m4b"
) -> PipelineBench:
    """One ``synth`` of the bench book to ``fmt`` in a temporary folder; its summary."""
    synth = Synthesizer(resolved.settings, choice=resolved.choice)
    try:
        plan = synth.plan(bench_book(sentences, seconds))
        with tempfile.TemporaryDirectory(prefix="voicekit-bench-") as folder:
            output = Path(folder) / f"bench.{fmt}"
            result = None
            for event in synth.run(plan, output, RunOptions(fmt=fmt)):
                result = event.result or result
    finally:
        synth.close()
    assert result is not None  # a run always ends with its summary
    return PipelineBench(
        format=fmt,
        device=result.device,
        backend=result.backend,
        audio_seconds=result.audio_seconds,
        wall_seconds=result.wall_seconds,
        x_realtime=round(result.audio_seconds / result.wall_seconds, 2),
        stages=result.stages,
        stage_busy=result.stage_busy,
        workers=getattr(result, "workers", None),
        peak_rss_mb=result.peak_rss_mb,
    )
