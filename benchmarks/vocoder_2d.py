"""The split vocoder against its 2-D twin (backends/conv2d.py), on the CPU, one thread.

    python benchmarks/vocoder_2d.py [--seconds 60] [--rounds 3]

Sentences of the bench text (``voicekit.diagnostics.bench``) go through the acoustic
stage once per round, then through the vocoder with each graph in turn (the order
alternates), in the backend's default chunks. Prints each round's process CPU time
for the acoustic stage and for each vocoder, and the SNR of the 2-D graph's audio
against the 1-D graph's. docs/BENCHMARKS.md, section 14.2, has a run.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnxruntime as ort

from voicekit.backends.ort import OrtBackend, session_options
from voicekit.backends.voices import load_voice
from voicekit.diagnostics.bench import bench_utterances
from voicekit.settings import SynthSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="audio per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    voice = load_voice()
    _, utts = bench_utterances(voice, args.seconds)
    backend = OrtBackend(voice, SynthSettings(threads=1), "cpu")
    if backend.split.vocoder_2d is None:
        raise SystemExit(f"no 2-D vocoder: {backend.split.meta.get('vocoder_2d_note')}")
    graphs = {
        name: ort.InferenceSession(str(path), session_options(1),
                                   providers=["CPUExecutionProvider"])
        for name, path in (("1-D", backend.split.vocoder), ("2-D", backend.split.vocoder_2d))
    }  # fmt: skip
    for round_ in range(args.rounds):
        began = time.process_time()
        latents = [backend.acoustic([u])[0] for u in utts]
        acoustic = time.process_time() - began
        audio: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        for name in graphs if round_ % 2 == 0 else list(graphs)[::-1]:
            backend.vocoder._session = graphs[name]
            began = time.process_time()
            audio[name] = np.concatenate(backend.vocoder(latents))
            seconds[name] = time.process_time() - began
        ref, got = audio["1-D"], audio["2-D"]
        snr = 10 * np.log10(np.sum(ref**2) / max(float(np.sum((ref - got) ** 2)), 1e-30))
        print(f"round {round_ + 1}: {len(ref) / voice.sample_rate:.1f} s of audio; CPU s: "
              f"acoustic {acoustic:.2f}, vocoder 1-D {seconds['1-D']:.2f}, "
              f"2-D {seconds['2-D']:.2f} ({seconds['1-D'] / seconds['2-D']:.2f}x); "
              f"SNR {snr:.1f} dB", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
