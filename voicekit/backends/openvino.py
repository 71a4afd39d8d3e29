"""The OpenVINO backend: the same split graphs as the onnxruntime backend, on the CPU.

Only the sessions differ: each graph is compiled by OpenVINO and wrapped in
onnxruntime's ``run(output_names, feed)``, so the stages of backends/ort.py (batching,
noise, vocoder chunks) drive it unchanged. docs/BENCHMARKS.md, section 12, has the
figures against onnxruntime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import openvino

from voicekit.backends.ort import OrtBackend, physical_cores
from voicekit.backends.voices import Voice
from voicekit.errors import DeviceError
from voicekit.settings import SynthSettings
from voicekit.system.devices import parse_device
from voicekit.system.paths import cache_dir


def compile_config(threads: int) -> dict[str, str]:
    """What voicekit asks of OpenVINO's CPU plugin."""
    return {
        # Compiled graphs are kept (OpenVINO keys them by graph, settings and its own
        # version): loading the voice took 10.4 s without, 1.7 s with (section 12).
        "CACHE_DIR": str(cache_dir() / "openvino"),
        # one request at a time, as the pipeline runs the stages
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": str(threads or physical_cores()),
        # Pinned threads wait for their own core; where other work shares the cores that
        # made the vocoder 1.6x slower (docs/BENCHMARKS.md, section 12).
        "ENABLE_CPU_PINNING": "NO",
        # The CPU plugin runs in bf16 by default where the CPU has it (AMX, AVX512-BF16):
        # fp32 keeps the audio within rounding of onnxruntime's.
        "INFERENCE_PRECISION_HINT": "f32",
    }


class OvSession:
    """An OpenVINO compiled model with onnxruntime's ``run(output_names, feed)``."""

    def __init__(self, compiled: Any) -> None:
        self._request = compiled.create_infer_request()

    def run(
        self, output_names: Sequence[str], feed: dict[str, np.ndarray], options: Any = None
    ) -> list[np.ndarray]:
        """``options``: onnxruntime's run options, which OpenVINO has no use for."""
        # share_outputs=False: the stages keep slices of an output past the next call
        result = self._request.infer(feed, share_inputs=False, share_outputs=False)
        return [np.asarray(result[name]) for name in output_names]


class OpenVinoBackend(OrtBackend):
    """Both stages on OpenVINO's CPU plugin."""

    name = "openvino"

    def open_sessions(self, settings: SynthSettings, device: str) -> list[Any]:
        if parse_device(device).kind != "cpu":
            raise DeviceError(
                f"the openvino backend runs on the CPU only, not {device}",
                hint="use --device cpu, or --backend ort or torch on a GPU",
            )
        core = openvino.Core()
        config = compile_config(settings.threads)
        sessions = []
        for path in (self.split.encoder, self.split.flow, self.split.vocoder):
            try:
                sessions.append(OvSession(core.compile_model(str(path), "CPU", config)))
            except RuntimeError as exc:  # OpenVINO raises RuntimeError with its own text
                raise DeviceError(
                    f"OpenVINO could not compile the voice for the CPU: {exc}",
                    hint="--backend ort runs the same graphs on onnxruntime",
                ) from exc
        return sessions


def create_backend(voice: Voice, settings: SynthSettings, device: str) -> OpenVinoBackend:
    return OpenVinoBackend(voice, settings, device)
