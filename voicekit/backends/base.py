"""The two stages every voice has, behind small protocols, and what they share.

acoustic: phoneme ids -> latent frames [channels, frames]
vocoder:  latent frames -> waveform [frames * hop]

The noise contract keeps output deterministic and backend-independent: each
utterance carries a key; a numpy generator seeded with that key draws the
duration-predictor noise first, then the prior noise, always in that order and
shape. Every backend must draw through :class:`Noise`.
"""

from __future__ import annotations

import contextlib
import importlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from voicekit.errors import DependencyError, InputError

if TYPE_CHECKING:
    from voicekit.backends.voices import Voice
    from voicekit.settings import SynthSettings


@dataclass(frozen=True)
class Utterance:
    """One sentence ready for the voice."""

    ids: np.ndarray
    """Phoneme ids (int64, 1-D)."""
    key: tuple[int, ...]
    """Seeds this utterance's noise: (seed, bucket hash, sentence index)."""


@dataclass(frozen=True)
class Scales:
    """The voice's inference knobs, resolved against the voice's defaults."""

    noise_scale: float
    length_scale: float
    noise_w: float
    speaker: int | None = None

    def as_array(self) -> np.ndarray:
        return np.array([self.noise_scale, self.length_scale, self.noise_w], dtype=np.float32)


class Noise:
    """Draws an utterance's noise in the one order every backend follows."""

    def __init__(self, key: Sequence[int]) -> None:
        self._rng = np.random.default_rng([int(k) & 0xFFFFFFFFFFFFFFFF for k in key])

    def duration(self, phonemes: int) -> np.ndarray:
        """Noise of the stochastic duration predictor, shape (2, phonemes)."""
        return self._rng.standard_normal((2, phonemes), dtype=np.float32)

    def prior(self, channels: int, frames: int) -> np.ndarray:
        """Noise of the prior sample, shape (channels, frames); draw after duration()."""
        return self._rng.standard_normal((channels, frames), dtype=np.float32)

    def prior_into(self, out: np.ndarray) -> None:
        """``prior`` drawn straight into ``out`` (C-contiguous float32 [channels, frames]):
        the same values, with no array of its own (the torch backend's pinned buffers)."""
        self._rng.standard_normal(out.shape, dtype=np.float32, out=out)


class AcousticStage(Protocol):
    """Phoneme ids to latent frames."""

    channels: int

    def __call__(self, batch: Sequence[Utterance]) -> list[Any]:
        """Latents per utterance, each [channels, frames] (numpy or backend tensor)."""
        ...


class VocoderStage(Protocol):
    """Latent frames to waveform."""

    hop: int

    def __call__(self, latents: Sequence[Any]) -> list[np.ndarray]:
        """Float32 audio per latent sequence, exactly frames * hop samples each."""
        ...


class Backend(Protocol):
    name: str
    device: str
    acoustic: AcousticStage
    vocoder: VocoderStage
    batch_sentences: int
    """Sentences the pipeline hands to one :meth:`synthesize` call (at least 1)."""

    def synthesize(self, batch: Sequence[Utterance]) -> list[np.ndarray]:
        """Audio (float32, [-1, 1]) per utterance, in input order."""
        ...

    def close(self) -> None: ...


class PendingCall(Protocol):
    """A call started by ``submit``: ``result()`` gives what ``synthesize`` would have."""

    def result(self) -> list[np.ndarray]: ...


class Submitting(Protocol):
    """What a backend adds when a call's work can go on without the host (queued on a GPU).

    ``submit(batch)`` starts the call and returns; the next ``submit`` may come before
    this one's ``result()``, so the pipeline starts call N+1 before it waits for call
    N's audio. ``overlaps_calls`` says whether that pays: on the CPU a submit is the
    whole call's work, and starting the next one first only holds this one's audio
    longer. Optional: the other backends are run through ``synthesize``.
    """

    overlaps_calls: bool

    def submit(self, batch: Sequence[Utterance]) -> PendingCall: ...


class Ready:
    """A call already made (``synthesize``), as a :class:`PendingCall`."""

    def __init__(self, audio: list[np.ndarray]) -> None:
        self._audio = audio

    def result(self) -> list[np.ndarray]:
        return self._audio


def submit_call(backend: Backend, batch: Sequence[Utterance]) -> PendingCall:
    """Start ``batch`` on ``backend``: its ``submit`` if it has one, else ``synthesize`` now."""
    submit = getattr(backend, "submit", None)
    if submit is not None:
        pending: PendingCall = submit(batch)
        return pending
    return Ready(backend.synthesize(batch))


def overlaps_calls(backend: Backend) -> bool:
    """Whether the pipeline should submit call N+1 before taking call N's audio."""
    return bool(getattr(backend, "overlaps_calls", False)) and hasattr(backend, "submit")


def call_results(
    backend: Backend, calls: Iterable[Sequence[Utterance]]
) -> Iterator[list[np.ndarray]]:
    """Each call's audio in order, call N+1 submitted before call N's audio is taken where
    the backend overlaps calls (as synth/calls.CallRunner runs them; bench times this)."""
    if not overlaps_calls(backend):
        for batch in calls:
            yield backend.synthesize(batch)
        return
    previous: PendingCall | None = None
    for batch in calls:
        current = submit_call(backend, batch)
        if previous is not None:
            yield previous.result()
        previous = current
    if previous is not None:
        yield previous.result()


class StageTimes:
    """Seconds per stage, kept by a backend until the pipeline takes them."""

    def __init__(self) -> None:
        self._times: dict[str, float] = {}

    @contextlib.contextmanager
    def timing(self, stage: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self._times[stage] = self._times.get(stage, 0.0) + time.perf_counter() - began

    def take(self) -> dict[str, float]:
        times, self._times = self._times, {}
        return times


@dataclass(frozen=True)
class ChunkSpan:
    """One vocoder window: compute frames [start, stop), keep output for [keep_start, keep_stop)."""

    start: int
    stop: int
    keep_start: int
    keep_stop: int


def chunk_spans(frames: int, chunk: int, overlap: int) -> list[ChunkSpan]:
    """Windows that cover ``frames`` in pieces of ``chunk``, each with ``overlap`` context.

    With overlap at least the decoder's receptive field the kept samples equal an
    unchunked run (up to float rounding); chunk=0 means one window.
    """
    if chunk <= 0 or frames <= chunk:
        return [ChunkSpan(0, frames, 0, frames)]
    spans = []
    for keep_start in range(0, frames, chunk):
        keep_stop = min(frames, keep_start + chunk)
        spans.append(
            ChunkSpan(
                max(0, keep_start - overlap),
                min(frames, keep_stop + overlap),
                keep_start,
                keep_stop,
            )
        )
    return spans


def resolve_scales(voice: Voice, settings: SynthSettings) -> Scales:
    noise_scale, length_scale, noise_w = voice.inference_defaults
    return Scales(
        noise_scale=noise_scale if settings.noise_scale is None else settings.noise_scale,
        length_scale=length_scale if settings.length_scale is None else settings.length_scale,
        noise_w=noise_w if settings.noise_w is None else settings.noise_w,
        speaker=voice.resolve_speaker(settings.speaker),
    )


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend: where its factory lives and its defaults."""

    factory: str
    """``module:function``, imported only when the backend is asked for (heavy imports)."""
    cuda_batch: int
    """On CUDA with ``batch_size`` 0: sentences per model call (torch: vocoder rows).
    The CPU runs one sentence at a time; memory estimates use this figure."""
    cuda_sentences_per_call: int
    """On CUDA with ``batch_size`` 0: sentences the pipeline hands to one call."""
    install: str | None = None
    """How to install what the backend needs, when it is an extra."""


BACKENDS: dict[str, BackendSpec] = {
    "ort": BackendSpec("voicekit.backends.ort:create_backend", 8, 8),
    "torch": BackendSpec(
        "voicekit.backends.torch.backend:create_backend",
        64,
        128,
        install="pip install 'voicekit[torch]' (or pip install torch)",
    ),
    # CPU only: the CUDA figures are never used
    "openvino": BackendSpec(
        "voicekit.backends.openvino:create_backend",
        1,
        1,
        install="pip install 'voicekit[openvino]'",
    ),
}


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def create_backend(name: str, voice: Voice, settings: SynthSettings, device: str) -> Backend:
    """Build the backend ``name`` for ``voice`` on ``device`` (``cpu`` or ``cuda:N``)."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; choose from {', '.join(backend_names())}")
    module_name, _, attr = BACKENDS[name].factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DependencyError(
            f"the {name} backend needs a package that is missing ({exc.name})",
            hint=BACKENDS[name].install,
        ) from exc
    factory = getattr(module, attr)
    backend: Backend = factory(voice, settings, device)
    return backend
