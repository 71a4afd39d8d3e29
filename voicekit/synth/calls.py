"""One call of the voice: load the backend, run a group of buckets, checkpoint each.

Shared by the in-process path (synth/pipeline.py) and the synthesis workers
(synth/workers.py), so both make the same calls and write the same segments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import numpy as np
import psutil

from voicekit.backends.base import Backend, Utterance, create_backend
from voicekit.backends.memory import fit_batch
from voicekit.backends.voices import Voice
from voicekit.formats.wav import float_to_pcm16
from voicekit.settings import SynthSettings
from voicekit.system.devices import parse_device
from voicekit.text.sentences import Bucket

Group = list[tuple[Bucket, list[Utterance | None]]]
"""Buckets of one call with their sentences ready for the voice."""
Writer = Callable[[str, np.ndarray, list[int]], None]
"""Writes one segment: (bucket hash, int16 PCM, samples of each sentence)."""
STAGES = ("phonemize", "acoustic", "vocoder", "checkpoint")
"""The per-stage seconds every call reports (a backend without timings adds "synthesize")."""


def physical_cores() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def backend_threads(settings: SynthSettings, device: str, backend: str, workers: int = 1) -> int:
    """Inference threads of one process's backend when ``workers`` processes share the cores.

    ``--threads`` is split between the workers. Unset, onnxruntime on the CPU runs one
    thread per process: its convolutions (MLAS) round differently with another thread
    count (1 vs 2 threads: a sample off by one in a few short sentences; 4 or 8: many;
    docs/BENCHMARKS.md, section 11), so one thread keeps a book's bytes the same for any
    ``--workers`` and any machine, and the workers use the cores instead. Elsewhere
    (CUDA, torch) the physical cores are split.
    """
    if settings.threads:
        return max(1, settings.threads // workers)
    if backend == "ort" and not parse_device(device).is_cuda:
        return 1
    return max(1, physical_cores() // workers)


def load_backend(
    settings: SynthSettings, voice: Voice, device: str, backend: str, workers: int = 1
) -> tuple[Backend, str]:
    """The backend of one of ``workers`` processes, with its batch lowered to fit the memory;
    and a note when it was lowered.

    Refuses or shrinks before loading rather than run out half-way through a book;
    batch_size is not in the audio fingerprint, so lowering it keeps resume exact.
    """
    settings = settings.replace(threads=backend_threads(settings, device, backend, workers))
    batch, note = fit_batch(settings, voice, device, backend)
    if note:
        settings = settings.replace(batch_size=batch)
    return create_backend(backend, voice, settings, device), note


def group_calls(buckets: list[Bucket], per_call: int) -> Iterator[list[Bucket]]:
    """Buckets in book order, in groups of at least ``per_call`` sentences (the last: fewer)."""
    group: list[Bucket] = []
    sentences = 0
    for bucket in buckets:
        group.append(bucket)
        sentences += len(bucket.sentences)
        if sentences >= max(1, per_call):
            yield group
            group, sentences = [], 0
    if group:
        yield group


def run_call(
    backend: Backend, group: Group, write: Writer
) -> Iterator[tuple[Bucket, int, dict[str, float]]]:
    """Synthesize a group, write each bucket's segment; yield (bucket, samples, timings).

    The call's per-stage seconds come with its last bucket (empty dicts before), so
    a sum over buckets counts each call once.
    """
    utterances = [u for _, utts in group for u in utts if u is not None]
    began = time.perf_counter()
    audio = iter(backend.synthesize(utterances) if utterances else [])
    # phonemize: the workers time it; in-process it runs in the feed's thread, overlapped
    timings = {stage: 0.0 for stage in STAGES if stage != "phonemize"}
    take = getattr(backend, "take_timings", None)
    if take is not None:
        timings.update(take())
    else:  # no per-stage figures from this backend: the whole call
        timings["synthesize"] = time.perf_counter() - began
    for n, (bucket, utts) in enumerate(group):
        pieces = [
            float_to_pcm16(next(audio)) if u is not None else np.zeros(0, np.int16) for u in utts
        ]
        pcm = np.concatenate(pieces) if pieces else np.zeros(0, np.int16)
        began = time.perf_counter()
        write(bucket.hash, pcm, [len(p) for p in pieces])
        timings["checkpoint"] += time.perf_counter() - began
        yield bucket, len(pcm), timings if n == len(group) - 1 else {}
        del pieces, pcm  # nothing of a bucket outlives its checkpoint
