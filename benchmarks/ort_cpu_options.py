"""Which onnxruntime set-up is fastest on this CPU? Session threads, batching, chunking,
and overlapping the acoustic and vocoder stages in two threads.

    python benchmarks/ort_cpu_options.py [--text examples/harbour.md] [--repeat 2]

Phonemes are prepared first (not timed): this measures the voice alone. Prints
one Markdown row per variant with seconds of audio per wall second.
"""

from __future__ import annotations

import argparse
import queue
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from unittest import mock

import numpy as np

from voicekit.backends import ort as ort_stage
from voicekit.backends.base import Utterance
from voicekit.backends.ort import OrtBackend
from voicekit.backends.voices import Voice, load_voice
from voicekit.settings import SynthSettings
from voicekit.synth.plan import build_plan
from voicekit.text.sources import load_source

HERE = Path(__file__).parent


def utterances(voice: Voice, text: Path) -> list[Utterance]:
    plan = build_plan(load_source(text), SynthSettings(), language=voice.language,
                      fingerprint="bench")
    out = []
    for bucket in plan.buckets:
        for i, sentence in enumerate(bucket.sentences):
            ids = np.array(voice.phoneme_ids(sentence), dtype=np.int64)
            out.append(Utterance(ids, (1, bucket.index, i)))
    return out


def sequential(backend: OrtBackend, utts: list[Utterance]) -> float:
    return sum(a.size for a in backend.synthesize(utts))


def unsplit(voice: Voice, utts: list[Utterance], threads: int) -> Callable[[], float]:
    """The voice file as Piper runs it: one graph, its own random nodes, default options."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    session = ort.InferenceSession(str(voice.model_path), opts,
                                   providers=["CPUExecutionProvider"])
    scales = np.array(voice.inference_defaults, dtype=np.float32)

    def run() -> float:
        samples = 0
        for utt in utts:
            feed = {"input": utt.ids[None], "input_lengths": np.array([utt.ids.size]),
                    "scales": scales}
            samples += session.run(None, feed)[0].size
        return samples

    return run


def overlapped(acoustic: OrtBackend, vocoder: OrtBackend, utts: list[Utterance]) -> float:
    """Acoustic stage of sentence n+1 runs while the vocoder works on sentence n."""
    handoff: queue.Queue[object] = queue.Queue(maxsize=2)
    samples = [0]

    def vocode() -> None:
        while (item := handoff.get()) is not None:
            samples[0] += sum(a.size for a in vocoder.vocoder(item))  # type: ignore[arg-type]

    worker = threading.Thread(target=vocode)
    worker.start()
    for utt in utts:
        handoff.put(acoustic.acoustic([utt]))
    handoff.put(None)
    worker.join()
    return samples[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--text", type=Path, default=HERE.parent / "examples" / "harbour.md")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    voice = load_voice()
    utts = utterances(voice, args.text)
    real_options = ort_stage.session_options

    def backend(spinning: bool = False, **kw: object) -> OrtBackend:
        settings = SynthSettings(device="cpu", **kw)  # type: ignore[arg-type]
        with mock.patch.object(ort_stage, "session_options",
                               lambda t: real_options(t, spinning=spinning)):
            return OrtBackend(voice, settings, "cpu")

    variants: dict[str, Callable[[], float]] = {}
    variants["unsplit voice file (as Piper runs it), 2 threads"] = unsplit(voice, utts, 2)
    spinning = backend(threads=2, chunk_frames=0, batch_size=1, spinning=True)
    variants["threads=2 batch=1 whole, thread spinning on"] = lambda: sequential(spinning, utts)
    for threads in (1, 2):
        b = backend(threads=threads, chunk_frames=0, batch_size=1)
        variants[f"threads={threads} batch=1 whole"] = lambda b=b: sequential(b, utts)
    for batch in (4,):
        b = backend(threads=2, chunk_frames=0, batch_size=batch)
        variants[f"threads=2 batch={batch} whole"] = lambda b=b: sequential(b, utts)
    for chunk in (128, 256, 512):
        b = backend(threads=2, chunk_frames=chunk, batch_size=1)
        variants[f"threads=2 batch=1 chunk={chunk}"] = lambda b=b: sequential(b, utts)
    a1, v1 = backend(threads=1, chunk_frames=256), backend(threads=1, chunk_frames=256)
    variants["overlapped stages, 1 thread each, chunk=256"] = lambda: overlapped(a1, v1, utts)

    print(f"{len(utts)} sentences from {args.text}\n")
    print("| variant | x real time (median) | runs |")
    print("|---|---|---|")
    for name, fn in variants.items():
        fn()  # warm-up
        speeds = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            samples = fn()
            speeds.append(samples / voice.sample_rate / (time.perf_counter() - start))
        print(f"| {name} | {statistics.median(speeds):.2f} | "
              f"{', '.join(f'{s:.2f}' for s in speeds)} |", flush=True)


if __name__ == "__main__":
    main()
