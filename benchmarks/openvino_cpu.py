"""onnxruntime against OpenVINO on the CPU, stage by stage, on the same inputs.

    python benchmarks/openvino_cpu.py [--text examples/harbour.md] [--rounds 5]

Routes, each over voicekit's split graphs and the stages of backends/ort.py:

- ``ort``: onnxruntime's CPU provider, as voicekit sets it up (the baseline);
- ``openvino``: the OpenVINO runtime (voicekit's ``openvino`` backend);
- ``ort-ovep``: onnxruntime's OpenVINO execution provider, where the installed
  onnxruntime has it (the ``onnxruntime-openvino`` wheel; it replaces onnxruntime,
  so run this in a separate virtual environment).

Sentences are phonemized first (not timed). "short", "mid" and "long" are the
shortest, the middle and the longest sentences of the text by phoneme count. The acoustic stage runs
one sentence at a time; the vocoder gets the same latents (made once by ``ort``)
for every route, in voicekit's default chunks. Rounds interleave the routes; the
table gives medians and the speed-up against ``ort`` (>1: faster).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from ort_cpu_options import utterances  # the same sentences, phonemized the same way

from voicekit.backends.base import create_backend
from voicekit.backends.ort import OrtBackend
from voicekit.backends.voices import Voice, load_voice
from voicekit.settings import SynthSettings

HERE = Path(__file__).parent


class OrtOpenVinoEP(OrtBackend):
    """onnxruntime with the OpenVINO execution provider (onnxruntime-openvino)."""

    name = "ort-ovep"

    def open_sessions(self, settings: SynthSettings, device: str) -> list[Any]:
        import onnxruntime as ort

        from voicekit.backends.ort import session_options

        threads = str(settings.threads)
        provider = (
            "OpenVINOExecutionProvider",
            {"device_type": "CPU", "precision": "FP32", "num_of_threads": threads},
        )
        opts = session_options(settings.threads)
        return [
            ort.InferenceSession(str(p), opts, providers=[provider, "CPUExecutionProvider"])
            for p in (self.split.encoder, self.split.flow, self.split.vocoder)
        ]


def routes(voice: Voice, threads: int, wanted: list[str]) -> dict[str, OrtBackend]:
    import onnxruntime

    settings = SynthSettings(device="cpu", threads=threads)
    made: dict[str, OrtBackend] = {
        "ort": create_backend("ort", voice, settings, "cpu")  # type: ignore[dict-item]
    }
    if "openvino" in wanted:
        made["openvino"] = create_backend("openvino", voice, settings, "cpu")  # type: ignore[assignment]
    if "ort-ovep" in wanted:
        if "OpenVINOExecutionProvider" in onnxruntime.get_available_providers():
            made["ort-ovep"] = OrtOpenVinoEP(voice, settings, "cpu")
        else:
            print("ort-ovep: not measured (this onnxruntime has no OpenVINOExecutionProvider)")
    return made


def timed(fn: Any, items: list[Any]) -> float:
    start = time.perf_counter()
    for item in items:
        fn([item])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--text", type=Path, default=HERE.parent / "examples" / "harbour.md")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sentences", type=int, default=8, help="per length class")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--classes", default="short,long", help="of short, mid, long")
    # onnxruntime-openvino bundles its own OpenVINO: measure ort-ovep in its own venv
    parser.add_argument("--routes", default="openvino", help="besides ort: openvino, ort-ovep")
    args = parser.parse_args()
    import onnxruntime

    print(f"onnxruntime {onnxruntime.__version__}")
    voice = load_voice()
    utts = sorted(utterances(voice, args.text), key=lambda u: u.ids.size)
    middle = (len(utts) - args.sentences) // 2
    classes = {
        "short": utts[: args.sentences],
        "mid": utts[middle : middle + args.sentences],
        "long": utts[-args.sentences :],
    }
    sets = {name: classes[name] for name in args.classes.split(",")}
    for name, batch in sets.items():
        sizes = [u.ids.size for u in batch]
        print(f"{name}: {len(batch)} sentences, {min(sizes)}-{max(sizes)} phonemes")
    print("| threads | stage | sentences | route | median s | speed-up vs ort |")
    print("|---|---|---|---|---|---|")
    for threads in (int(t) for t in args.threads.split(",")):
        made = routes(voice, threads, args.routes.split(","))
        base = made["ort"]
        latents = {name: base.acoustic(batch) for name, batch in sets.items()}
        for backend in made.values():  # warm-up: first runs at new shapes are slow
            for name, batch in sets.items():
                backend.acoustic(batch[:2])
                backend.vocoder(latents[name][:2])
        times: dict[tuple[str, str, str], list[float]] = {}
        for _ in range(args.rounds):
            for route, backend in made.items():
                for name, batch in sets.items():
                    times.setdefault(("acoustic", name, route), []).append(
                        timed(backend.acoustic, batch)
                    )
                    times.setdefault(("vocoder", name, route), []).append(
                        timed(backend.vocoder, latents[name])
                    )
        for name in sets:  # both stages, round by round
            for route in made:
                times[("both", name, route)] = [
                    a + v
                    for a, v in zip(
                        times[("acoustic", name, route)],
                        times[("vocoder", name, route)],
                        strict=True,
                    )
                ]
        for stage in ("acoustic", "vocoder", "both"):
            for name in sets:
                ref = statistics.median(times[(stage, name, "ort")])
                for route in made:
                    med = statistics.median(times[(stage, name, route)])
                    print(
                        f"| {threads} | {stage} | {name} | {route} | {med:.3f} | {ref / med:.2f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
