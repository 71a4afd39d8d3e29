"""The onnxruntime backend: the voice's own graph, split in three, on CPU or CUDA.

The stages only call ``session.run``; backends/openvino.py runs them on OpenVINO.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from voicekit.backends.base import (
    BACKENDS,
    Noise,
    Scales,
    StageTimes,
    Utterance,
    chunk_spans,
    resolve_scales,
)
from voicekit.backends.vocoder_stages import Stage, StagedRun
from voicekit.backends.voice_graph import SplitVoice, split_voice
from voicekit.backends.voices import Voice
from voicekit.errors import DeviceError
from voicekit.settings import SynthSettings
from voicekit.system.devices import parse_device
from voicekit.system.paths import cache_dir

log = logging.getLogger(__name__)

CUDA_BATCH = BACKENDS["ort"].cuda_batch
CPU_GRAPHS = "vocoder-conv2d-blocked"
"""Part of the audio fingerprint of onnxruntime runs on the CPU: they vocode with the
2-D twin of the voice's vocoder, whose audio differs from the 1-D graph's in the last
bits, so a job is not finished with segments from before the rewrite. Whether a voice's
vocoder can be rewritten depends on its file alone, whose hash the fingerprint holds.
The name changes whenever the rewrite changes those bits ("-blocked": the residual sums
moved into the convolutions, backends/conv2d.keep_blocked). The stages and tiles of
backends/vocoder_stages.py kept the name: their audio was the whole graph's bit for bit
on an AVX2 CPU. On a CPU whose kernels add up in another order they could differ by
float rounding (at most 1e-6, tested), and a job begun before that change and finished
after it would hold segments of both."""


def graphs_for(backend: str, device: str) -> str:
    """What the fingerprint records of the graphs ``backend`` runs on ``device``."""
    return CPU_GRAPHS if backend == "ort" and not parse_device(device).is_cuda else ""


@dataclass
class OrtLatents:
    """Latent frames of one utterance, plus what else the vocoder graph wants (speaker)."""

    z: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def frames(self) -> int:
        return int(self.z.shape[-1])


def session_options(threads: int, spinning: bool = False) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or physical_cores()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    # Every sentence has its own shapes, and onnxruntime keeps a memory plan per input
    # shape it has seen: off, a worker peaked 40 MB lower (319 -> 279 MB on harbour's
    # first 60 sentences), at the same speed and with the same bytes
    # (docs/BENCHMARKS.md, section 14).
    opts.enable_mem_pattern = False
    if not spinning:
        # Three sessions run one after another; by default each one's threads spin
        # after a run and steal the cores from the next (docs/BENCHMARKS.md, section 2).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


@functools.cache
def shared_cpu_arena() -> None:
    """Register one CPU memory arena that every session of this process draws from.

    Each session otherwise grows an arena of its own, and the encoder, flow and
    vocoder, which never run at once, each keep their peak: shared, a worker peaked
    at 232 MB instead of 265 MB on harbour, with the same bytes and CPU time
    (docs/BENCHMARKS.md, section 14.2). Sessions opt in with
    ``session.use_env_allocators``.
    """
    import onnxruntime as ort

    memory = ort.OrtMemoryInfo(
        "Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT
    )
    # 0, 0, -1, -1: onnxruntime's defaults (no limit, grow by powers of two)
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg(0, 0, -1, -1))


def physical_cores() -> int:
    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def providers_for(device: str) -> list[Any]:
    parsed = parse_device(device)
    if parsed.is_cuda:
        return [
            (
                "CUDAExecutionProvider",
                {"device_id": parsed.index or 0, "cudnn_conv_algo_search": "HEURISTIC"},
            ),
            "CPUExecutionProvider",
        ]
    return ["CPUExecutionProvider"]


def _feed(names: Sequence[str], values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: values[name] for name in names}


class OrtAcoustic:
    """Encoder + durations, prior noise, flow: phoneme ids to latent frames."""

    run_options: Any = None
    """onnxruntime ``RunOptions`` of every run (a lane's, to stop it: :meth:`OrtBackend.lane`)."""

    def __init__(self, split: SplitVoice, encoder: Any, flow: Any, scales: Scales) -> None:
        self.meta = split.meta
        self.channels = int(self.meta["channels"])
        self._encoder = encoder
        self._flow = flow
        self._scales = scales

    def __call__(self, batch: Sequence[Utterance]) -> list[OrtLatents]:
        meta = self.meta
        lengths = np.array([len(u.ids) for u in batch], dtype=np.int64)
        ids = np.zeros((len(batch), int(lengths.max())), dtype=np.int64)
        noise_w = np.zeros((len(batch), 2, ids.shape[1]), dtype=np.float32)
        noises = [Noise(u.key) for u in batch]
        for i, (utt, noise) in enumerate(zip(batch, noises, strict=True)):
            ids[i, : len(utt.ids)] = utt.ids
            noise_w[i, :, : len(utt.ids)] = noise.duration(len(utt.ids))
        values: dict[str, np.ndarray] = {
            "input": ids,
            "input_lengths": lengths,
            "scales": self._scales.as_array(),
            meta["dp_noise"]: noise_w,
        }
        if self._scales.speaker is not None:
            values["sid"] = np.full((len(batch),), self._scales.speaker, dtype=np.int64)
        cut = self._encoder.run(
            meta["encoder_outputs"], _feed(meta["encoder_inputs"], values), self.run_options
        )
        values.update(zip(meta["encoder_outputs"], cut, strict=True))
        frames = values[meta["mask"]].reshape(len(batch), -1).sum(axis=1).astype(np.int64)
        prior = np.zeros(values[meta["prior_like"]].shape, dtype=np.float32)
        for i, noise in enumerate(noises):
            prior[i, :, : frames[i]] = noise.prior(self.channels, int(frames[i]))
        values[meta["prior_noise"]] = prior
        (latents,) = self._flow.run(
            [meta["latents"]], _feed(meta["flow_inputs"], values), self.run_options
        )
        out = []
        for i in range(len(batch)):
            extra = {name: values[name][i : i + 1] for name in meta["vocoder_extra"]}
            out.append(OrtLatents(latents[i, :, : frames[i]], extra))
        return out


class OrtVocoder:
    """The voice's HiFi-GAN decoder graph, whole or in overlapping chunks; or its stages
    (backends/vocoder_stages.py), each chunk through the first and then in tiles."""

    run_options: Any = None
    """As :attr:`OrtAcoustic.run_options`."""

    def __init__(self, split: SplitVoice, graph: Any, hop: int, settings: SynthSettings) -> None:
        """``graph``: one session, or the vocoder's :class:`Stage` list."""
        self.meta = split.meta
        self.hop = hop
        self._staged = StagedRun(graph) if isinstance(graph, list) else None
        self._session = None if isinstance(graph, list) else graph
        self._chunk = settings.chunk_frames
        self._overlap = settings.overlap_frames

    def __call__(self, latents: Sequence[OrtLatents]) -> list[np.ndarray]:
        return [self._one(lat) for lat in latents]

    def _one(self, lat: OrtLatents) -> np.ndarray:
        hop, name, out = self.hop, self.meta["latents"], self.meta["output"]
        pieces = []
        if self._staged is not None:
            for span in chunk_spans(lat.frames, self._chunk, self._overlap):
                keep = (span.keep_start - span.start, span.keep_stop - span.start)
                window = lat.z[None, :, span.start : span.stop]
                pieces.append(self._staged(window, keep, self.run_options))
            return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)
        for span in chunk_spans(lat.frames, self._chunk, self._overlap):
            feed = {name: np.ascontiguousarray(lat.z[None, :, span.start : span.stop]), **lat.extra}
            (audio,) = self._session.run([out], feed, self.run_options)
            audio = audio.reshape(-1)
            pieces.append(
                audio[(span.keep_start - span.start) * hop : (span.keep_stop - span.start) * hop]
            )
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


class OrtBackend:
    """Both stages on onnxruntime sessions over the split graphs.

    Subclasses run the same graphs on another runtime by overriding :meth:`open_sessions`
    (anything with onnxruntime's ``run(output_names, feed)``).
    """

    name = "ort"

    def __init__(self, voice: Voice, settings: SynthSettings, device: str) -> None:
        self.device = device
        self.split = split_voice(voice.model_path, voice.sha256, cache_dir())
        encoder, flow, *vocoder = self.open_sessions(settings, device)
        scales = resolve_scales(voice, settings)
        self.batch_size = settings.batch_size or (CUDA_BATCH if parse_device(device).is_cuda else 1)
        if scales.speaker is not None:
            # Piper exports the speaker input with a fixed batch of one.
            self.batch_size = 1
        # one call takes as many sentences as one acoustic batch, so CUDA sees full batches
        self.batch_sentences = self.batch_size
        self.acoustic = OrtAcoustic(self.split, encoder, flow, scales)
        stages = self.vocoder_stages(device)
        graph: Any = vocoder[0]
        if stages:
            graph = [Stage(session, radius, up) for session, (_, radius, up) in
                     zip(vocoder, stages, strict=True)]  # fmt: skip
        self.vocoder = OrtVocoder(self.split, graph, voice.hop_length, settings)
        self.times = StageTimes()

    def open_sessions(self, settings: SynthSettings, device: str) -> list[Any]:
        """Encoder, flow and vocoder sessions over ``self.split``'s graphs (the vocoder's
        stages, one session each, where :meth:`vocoder_stages` has them)."""
        import onnxruntime as ort

        if parse_device(device).is_cuda:
            # lazy: ortcuda (~5 ms) is for CUDA runs only, not every start-up
            from voicekit.system.ortcuda import preload_cuda_libraries

            preload_cuda_libraries()  # CUDA/cuDNN from the nvidia-* wheels, if installed
        opts = session_options(settings.threads)
        if not parse_device(device).is_cuda:
            shared_cpu_arena()
            opts.add_session_config_entry("session.use_env_allocators", "1")
        providers = providers_for(device)
        sessions = []
        stages = [path for path, _, _ in self.vocoder_stages(device)]
        vocoder = stages or [self.vocoder_graph(device)]
        for path in (self.split.encoder, self.split.flow, *vocoder):
            try:
                sess = ort.InferenceSession(str(path), opts, providers=providers)
            except Exception as exc:  # onnxruntime raises its own exception types
                raise DeviceError(
                    f"onnxruntime could not load the voice on {device}: {exc}",
                    hint="voicekit doctor tells what is missing",
                ) from exc
            if parse_device(device).is_cuda and "CUDAExecutionProvider" not in sess.get_providers():
                raise DeviceError(
                    f"onnxruntime could not start CUDA on {device} (it fell back to the CPU)",
                    hint="voicekit doctor names the missing library and the fix",
                )
            sessions.append(sess)
        return sessions

    def vocoder_graph(self, device: str) -> Path:
        """The vocoder graph for ``device``: the 2-D twin where the fingerprint says so
        (onnxruntime on the CPU, where it is faster: backends/conv2d.py), else the
        voice's own."""
        if not graphs_for(self.name, device):
            return self.split.vocoder
        wide = self.split.vocoder_2d
        if wide is None:
            log.info("vocoder kept in 1-D: %s", self.split.meta.get("vocoder_2d_note"))
            return self.split.vocoder
        return wide

    def vocoder_stages(self, device: str) -> list[tuple[Path, int, int]]:
        """The 2-D vocoder's stages where it runs (backends/vocoder_stages.py), else []."""
        if self.vocoder_graph(device) != self.split.vocoder_2d:
            return []
        return self.split.vocoder_stages

    def synthesize(self, batch: Sequence[Utterance]) -> list[np.ndarray]:
        results: list[np.ndarray | None] = [None] * len(batch)
        # Similar lengths together so padding wastes little when batching.
        order = sorted(range(len(batch)), key=lambda i: len(batch[i].ids))
        for start in range(0, len(order), self.batch_size):
            group = order[start : start + self.batch_size]
            with self.times.timing("acoustic"):
                latents = self.acoustic([batch[i] for i in group])
            with self.times.timing("vocoder"):
                audio = self.vocoder(latents)
            for i, samples in zip(group, audio, strict=True):
                results[i] = samples
        return [r for r in results if r is not None]

    def take_timings(self) -> dict[str, float]:
        return self.times.take()

    def lane(self) -> OrtBackend:
        """This backend for one more thread (synth/lanes.py): the same sessions, which
        onnxruntime runs from several threads at once, with stage times of its own and a
        ``RunOptions`` that :meth:`stop` sets to end its runs from another thread."""
        import onnxruntime as ort

        view = copy.copy(self)
        view.times = StageTimes()
        options = ort.RunOptions()
        view.acoustic = copy.copy(self.acoustic)
        view.vocoder = copy.copy(self.vocoder)
        view.acoustic.run_options = view.vocoder.run_options = options
        return view

    def stop(self) -> None:
        """End this lane's run in progress (onnxruntime raises in the thread running it)."""
        for stage in (self.acoustic, self.vocoder):
            if stage is not None and stage.run_options is not None:
                stage.run_options.terminate = True

    def close(self) -> None:
        self.acoustic = None  # type: ignore[assignment]
        self.vocoder = None  # type: ignore[assignment]


def create_backend(voice: Voice, settings: SynthSettings, device: str) -> OrtBackend:
    return OrtBackend(voice, settings, device)
