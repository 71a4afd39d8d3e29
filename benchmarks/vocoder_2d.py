"""The split vocoder against its 2-D twins (backends/conv2d.py), on the CPU, one thread.

    python benchmarks/vocoder_2d.py [--seconds 60] [--rounds 3]

Sentences of the bench text (``voicekit.diagnostics.bench``) go through the acoustic
stage once per round, then through the vocoder with each graph in turn (the order
turns each round), in the backend's default chunks: the voice's own 1-D graph, the
plain 2-D rewrite, the 2-D rewrite kept in onnxruntime's blocked layout, and that
graph cut into stages run in tiles (backends/vocoder_stages.py: what runs). Prints each
round's process CPU time for the acoustic stage and for each vocoder, each 2-D graph's
SNR against the 1-D graph's audio, and whether the staged audio is the blocked graph's
bit for bit. docs/BENCHMARKS.md, sections 14.2, 14.3 and 14.7, have runs.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import onnx
import onnxruntime as ort

from voicekit.backends.conv2d import as_conv2d
from voicekit.backends.ort import OrtBackend, session_options
from voicekit.backends.voices import load_voice
from voicekit.diagnostics.bench import bench_utterances
from voicekit.settings import SynthSettings

STAGED = "2-D staged"


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
    plain, _ = as_conv2d(onnx.load(str(backend.split.vocoder)), blocked=False)
    sources = {
        "1-D": str(backend.split.vocoder),
        "2-D": plain.SerializeToString(),
        "2-D blocked": str(backend.split.vocoder_2d),
    }
    graphs = {
        name: ort.InferenceSession(source, session_options(1), providers=["CPUExecutionProvider"])
        for name, source in sources.items()
    }
    staged = backend.vocoder._staged
    if staged is None:
        raise SystemExit(f"no stages: {backend.split.meta.get('vocoder_stages_note')}")
    names = [*graphs, STAGED]
    for round_ in range(args.rounds):
        began = time.process_time()
        latents = [backend.acoustic([u])[0] for u in utts]
        acoustic = time.process_time() - began
        audio: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        turn = round_ % len(names)
        for name in names[turn:] + names[:turn]:
            backend.vocoder._session = graphs.get(name)
            backend.vocoder._staged = staged if name == STAGED else None
            began = time.process_time()
            audio[name] = np.concatenate(backend.vocoder(latents))
            seconds[name] = time.process_time() - began
        ref = audio["1-D"]
        parts = [f"acoustic {acoustic:.2f}", f"vocoder 1-D {seconds['1-D']:.2f}"]
        for name in names[1:]:
            got = audio[name]
            noise = max(float(np.sum((ref - got) ** 2)), 1e-30)
            snr = 10 * np.log10(float(np.sum(ref**2)) / noise)
            parts.append(f"{name} {seconds[name]:.2f} ({seconds['1-D'] / seconds[name]:.2f}x, "
                         f"{snr:.1f} dB)")  # fmt: skip
        same = np.array_equal(audio[STAGED], audio["2-D blocked"])
        print(
            f"round {round_ + 1}: {len(ref) / voice.sample_rate:.1f} s of audio; CPU s: "
            + ", ".join(parts)
            + f"; staged = blocked bit for bit: {same}",
            flush=True,
        )


if __name__ == "__main__":
    main()
