"""How much vocoder overlap makes chunked audio equal unchunked (docs/DESIGN-NOTES.md).

Vocodes the same latents of a few sentences whole and in chunks of 32 frames
(many seams) with several overlaps, on the CPU with the torch backend, and
prints the SNR of each against the whole.

    python benchmarks/chunk_overlap.py --overlaps 4,8,11,16
"""

from __future__ import annotations

import argparse

import numpy as np

from voicekit.backends.base import Utterance
from voicekit.backends.torch.backend import TorchBackend
from voicekit.backends.torch.weights import load_weights
from voicekit.backends.voices import load_voice
from voicekit.settings import SynthSettings

SENTENCES = [
    "The harbour was quiet that morning, and the boats lay still on the grey water.",
    "She counted the gulls on the wall, lost count at forty, and began again.",
    "Nobody in the village remembered a winter as long as that one.",
]


def snr_db(out: np.ndarray, ref: np.ndarray) -> float:
    noise = float(np.sum((out.astype(np.float64) - ref) ** 2))
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    return float("inf") if noise == 0 else 10 * np.log10(signal / noise)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overlaps", default="4,8,11,16")
    parser.add_argument("--chunk", type=int, default=32)
    args = parser.parse_args()
    voice = load_voice()
    weights = load_weights(voice.model_path, voice.config)
    base = SynthSettings(device="cpu", threads=0, chunk_frames=0)
    whole_backend = TorchBackend(voice, base, "cpu", weights=weights)
    utts = [
        Utterance(np.asarray(voice.phoneme_ids(t), dtype=np.int64), (1234, 1, i))
        for i, t in enumerate(SENTENCES)
    ]
    latents = whole_backend.acoustic(utts)
    whole = np.concatenate(whole_backend.vocoder(latents))
    frames = sum(int(z.shape[-1]) for z in latents)
    print(f"{len(SENTENCES)} sentences, {frames} latent frames, chunks of {args.chunk}")
    for overlap in (int(x) for x in args.overlaps.split(",")):
        settings = base.replace(chunk_frames=args.chunk, overlap_frames=overlap)
        chunked = TorchBackend(voice, settings, "cpu", weights=weights).vocoder(latents)
        audio = np.concatenate(chunked)
        print(f"overlap {overlap:3d}: SNR {snr_db(audio, whole):7.1f} dB, "
              f"max abs diff {float(np.max(np.abs(audio - whole))):.1e}")


if __name__ == "__main__":
    main()
