"""The vocoder in int8 (onnxruntime static quantization, QDQ) against fp32, on the CPU.

    python benchmarks/int8_vocoder.py
    PYTHONPATH=/tmp/pesqlib python benchmarks/int8_vocoder.py --score   # WER, PESQ-WB too

Quantizes the split vocoder graph with per-channel int8 weights and uint8 activations,
calibrated on 10 windows of 256 latent frames of examples/harbour.md; then vocodes the
latents of sentences 20-59 with both sessions (one thread each; the best of two rounds
of process CPU time) and gives the SNR of int8 against fp32. The fp32 session is the
graph that was quantized, the 1-D split vocoder; voicekit itself now runs its 2-D twin
on the CPU (backends/conv2d.py), 1.24x less CPU than this baseline. ``--score`` adds each
one's WER (pocketsphinx, benchmarks/asr.py) and PESQ-WB of int8 against fp32 (the
``pesq`` package; 16 kHz by ffmpeg; mean over 10 s segments). Not a voicekit option:
docs/BENCHMARKS.md, section 14.1, says why.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quantize_static,
)

from voicekit.backends.base import Utterance, create_backend
from voicekit.backends.ort import session_options
from voicekit.backends.voices import load_voice
from voicekit.formats.ffmpeg import decode_pcm
from voicekit.formats.wav import WavWriter, float_to_pcm16
from voicekit.settings import SynthSettings

HERE = Path(__file__).parent
RATE = 22050


class Windows(CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._it = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def sentences(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8").replace("#", "")
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if len(s.strip()) > 3]


def write_wav(audio: np.ndarray, path: Path) -> None:
    with WavWriter(path, RATE) as wav:
        wav.write(float_to_pcm16(audio))


def at_16k(path: Path) -> np.ndarray:
    return np.concatenate(list(decode_pcm(path, 16000))).astype(np.float32) / 32768


def score(fp32: np.ndarray, int8: np.ndarray, text: str, folder: Path) -> None:
    sys.path.insert(0, str(HERE))
    from asr import wer  # beside this script
    from pesq import pesq  # optional: pip install --target /tmp/pesqlib pesq

    paths = {"fp32": folder / "fp32.wav", "int8": folder / "int8.wav"}
    write_wav(fp32, paths["fp32"])
    write_wav(int8, paths["int8"])
    for name, path in paths.items():
        print(f"{name} WER {wer(path, text):.3f}", flush=True)
    ref, deg = at_16k(paths["fp32"]), at_16k(paths["int8"])
    seg = 16000 * 10
    pesqs = [pesq(16000, ref[i : i + seg], deg[i : i + seg], "wb")
             for i in range(0, len(ref) - seg, seg)]  # fmt: skip
    print(f"PESQ-WB int8 against fp32: mean {np.mean(pesqs):.2f}, lowest {min(pesqs):.2f}, "
          f"{len(pesqs)} segments")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--text", type=Path, default=HERE.parent / "examples" / "harbour.md")
    parser.add_argument("--score", action="store_true", help="WER and PESQ-WB as well")
    args = parser.parse_args()
    voice = load_voice()
    backend: Any = create_backend("ort", voice, SynthSettings(threads=1), "cpu")
    said = sentences(args.text)
    utts = [Utterance(np.asarray(voice.phoneme_ids(s), np.int64), (0, 1, i))
            for i, s in enumerate(said[:60])]  # fmt: skip
    latents = [backend.acoustic([u])[0] for u in utts]
    name = backend.split.meta["latents"]
    calibration = [{name: np.ascontiguousarray(lat.z[None, :, :256])} for lat in latents[:20:2]]
    with tempfile.TemporaryDirectory() as tmp:
        quantized = Path(tmp) / "vocoder-int8.onnx"
        quantize_static(str(backend.split.vocoder), str(quantized), Windows(calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)  # fmt: skip
        def session(path: Path) -> Any:
            return ort.InferenceSession(
                str(path), session_options(1), providers=["CPUExecutionProvider"]
            )

        # the graph that was quantized, not the 2-D twin the backend runs on the CPU
        sessions = {"fp32": session(backend.split.vocoder), "int8": session(quantized)}
        test = latents[20:60]
        seconds: dict[str, list[float]] = {k: [] for k in sessions}
        audio: dict[str, np.ndarray] = {}
        for _ in range(2):
            for key, session in sessions.items():
                backend.vocoder._session, backend.vocoder._staged = session, None
                began = time.process_time()
                out = backend.vocoder(test)
                seconds[key].append(time.process_time() - began)
                audio[key] = np.concatenate(out)
        ref, got = audio["fp32"], audio["int8"]
        snr = 10 * np.log10(np.sum(ref**2) / np.sum((ref - got) ** 2))
        fp, q = min(seconds["fp32"]), min(seconds["int8"])
        print(f"{len(ref) / RATE:.1f} s of audio: fp32 {fp:.2f} s CPU, int8 {q:.2f} s CPU "
              f"({fp / q:.2f}x less); SNR of int8 against fp32 {snr:.1f} dB")  # fmt: skip
        if args.score:
            score(ref, got, " ".join(said[20:60]), Path(tmp))


if __name__ == "__main__":
    main()
