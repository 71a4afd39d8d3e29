"""How much memory a run needs on its device, and the largest batch that fits.

The estimate, in bytes, for ``batch`` sentences of the longest allowed length::

    fpp  = 0.047 s x length_scale x sample_rate / hop   latent frames per phoneme
    F    = max_sentence_phonemes x fpp                  frames of the longest sentence
    L    = 2 x max_sentence_phonemes + 1                its phoneme ids (Piper pads between)
    Fv   = F, or min(F, chunk_frames + 2 x overlap_frames) when chunked
    acoustic(sentence) = 32 x L x F                     alignment path [F, L] and its copies
                       + 16 x 4 x C x F                 flow: ~16 live [C, F] fp32 tensors
    vocoder(frame)     = max over decoder convs of (C_in x k + 2 x C_out) x U x bytes
    total = overhead + weights x copies
          + slack x (batch x acoustic(sentence) + Nv x Fv x vocoder(frame))

``C`` is the latent channels, ``U`` the upsampling so far at a decoder conv,
``k`` its kernel, ``bytes`` 4 (fp32) or 2 (fp16/bf16 on CUDA). The vocoder term
is the unfolded input of the widest conv (what im2col-style kernels allocate)
plus the level's input and residual sum; it is largest at the last level
(32 channels x 256 upsampling x kernel 7 for a Piper medium voice: 295 KB per
latent frame in fp32). ``Nv`` is 1 for ``ort`` (its vocoder runs one sentence
at a time). For ``torch`` on CUDA, or with a batch above 1, the packed shape
policy sets the vocoder call: ``min(32, batch)`` rows of ``PACK_WINDOW`` (1,024)
frames, whatever the sentence lengths and ``chunk_frames`` (32,768 frames at
most, the same budget as before); the estimate takes those figures from
``backends/torch/shapes.py``. The acoustic term still pads batch, ``L`` and
``F`` as the old bucketed policy did: an over-estimate for packed rows (the
flow runs on the same rows as the decoder; durations on groups of 16,384 ids),
kept until GPU measurements recalibrate it (BENCHMARKS.md section 7).

The measured figures behind the constants, and what is not measured yet, are in
docs/DESIGN-NOTES.md (Memory estimate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil

from voicekit.backends.base import BACKENDS
from voicekit.backends.torch.shapes import (
    CUDA_FRAME_BUDGET,
    MAX_PACK_ROWS,
    PACK_WINDOW,
    batch_groups,
    pad_lengths,
    padded_shape,
)
from voicekit.backends.voice_graph import DEFAULT_DECODER, DecoderShape, split_voice
from voicekit.errors import DeviceError, VoicekitError
from voicekit.system.devices import gpu_info_for, parse_device
from voicekit.system.paths import cache_dir

if TYPE_CHECKING:
    from voicekit.backends.voices import Voice
    from voicekit.settings import SynthSettings

SECONDS_PER_PHONEME = 0.047
ALIGN_BYTES = 32  # per (phoneme id x frame)
FLOW_TENSORS = 16  # live [C, F] float32 tensors in the flow
CUDA_OVERHEAD_MB = 1024.0  # CUDA context + cuBLAS/cuDNN handles and workspaces (assumed)
SLACK = {"ort": 1.5, "torch": 1.2}  # allocator overhead on CUDA (assumed, not measured)
HEADROOM = 0.9  # use at most this share of the free memory
FIXED_MB = 64.0  # small-tensor and workspace floor seen on CPU at short inputs


def decoder_shape(voice: Voice) -> DecoderShape:
    """The decoder geometry of a Piper VITS voice.

    Read from the split-voice cache, where the splitter stored it when it walked
    the graph: parsing the 63 MB model again would cost every run ~0.5 s and
    ~100 MB of peak memory.
    """
    try:
        meta = split_voice(voice.model_path, voice.sha256, cache_dir()).meta
    except (VoicekitError, OSError):  # unreadable: the voice loader reports that better
        return DEFAULT_DECODER
    shape = meta.get("decoder")
    return DecoderShape(**shape) if shape else DEFAULT_DECODER


@dataclass(frozen=True)
class MemoryEstimate:
    """The parts of the estimate, in MB, for one device, backend and batch."""

    device: str
    backend: str
    batch_size: int
    longest_frames: int
    vocoder_frames: int
    """Frames of the longest vocoder call (padded, as torch runs it on CUDA)."""
    overhead_mb: float
    weights_mb: float
    acoustic_mb: float
    vocoder_mb: float
    vocoder_rows: int = 1
    """Windows vocoded together in that call."""

    @property
    def total_mb(self) -> float:
        return self.overhead_mb + self.weights_mb + self.acoustic_mb + self.vocoder_mb

    def describe(self) -> str:
        return (
            f"~{self.total_mb:,.0f} MB at batch {self.batch_size} ("
            f"{'context' if self.device.startswith('cuda') else 'fixed'} {self.overhead_mb:,.0f}"
            f" + weights {self.weights_mb:,.0f} + acoustic {self.acoustic_mb:,.0f} + vocoder "
            f"{self.vocoder_mb:,.0f} MB for vocoder calls of {self.vocoder_rows} x "
            f"{self.vocoder_frames:,} frames)"
        )


def longest_frames(settings: SynthSettings, voice: Voice, length_scale: float | None = None) -> int:
    scale = length_scale or settings.length_scale or voice.inference_defaults[1]
    fpp = SECONDS_PER_PHONEME * scale * voice.sample_rate / voice.hop_length
    return max(1, math.ceil(settings.max_sentence_phonemes * fpp))


def vocoder_frames(settings: SynthSettings, frames: int) -> int:
    if settings.chunk_frames <= 0:
        return frames
    return min(frames, settings.chunk_frames + 2 * settings.overlap_frames)


def _vocoder_call(
    settings: SynthSettings, backend: str, cuda: bool, batch: int, frames: int
) -> tuple[int, int]:
    """(rows, frames) of the largest vocoder call the backend makes."""
    if backend != "torch":
        return 1, frames  # onnxruntime vocodes one sentence (or chunk) at a time
    if cuda or batch > 1:
        # The packed policy: rows of PACK_WINDOW frames, at most min(MAX_PACK_ROWS,
        # batch) of them per call, whatever the sentences' lengths or chunk setting.
        return min(MAX_PACK_ROWS, batch), PACK_WINDOW
    if not cuda:
        return batch, frames  # one sentence at a time, at its own length
    # The first group of windows all of the longest length is the backend's largest call.
    buckets = pad_lengths(settings.chunk_frames, settings.overlap_frames)
    first = next(batch_groups([frames] * batch, batch, CUDA_FRAME_BUDGET, True, buckets))
    return padded_shape(len(first), frames, True, buckets)


def estimate_memory(
    settings: SynthSettings, voice: Voice, device: str, backend: str, batch_size: int
) -> MemoryEstimate:
    """Peak memory of ``batch_size`` longest-possible sentences on ``device``."""
    shape = decoder_shape(voice)
    cuda = parse_device(device).is_cuda
    frames = longest_frames(settings, voice)
    ids = 2 * settings.max_sentence_phonemes + 1
    rows, v_frames = _vocoder_call(
        settings, backend, cuda, batch_size, vocoder_frames(settings, frames)
    )
    half = cuda and backend == "torch" and settings.precision in ("fp16", "bf16")
    per_frame = shape.floats_per_frame * (2 if half else 4)
    # torch on CUDA runs the acoustic stage at padded (batch, ids) and (batch, frames).
    padding = cuda and backend == "torch"
    buckets = pad_lengths(settings.chunk_frames, settings.overlap_frames)
    acoustic_rows, a_frames = padded_shape(batch_size, frames, padding, buckets)
    _, a_ids = padded_shape(batch_size, ids, padding, buckets)
    acoustic = ALIGN_BYTES * a_ids * a_frames + FLOW_TENSORS * 4 * shape.channels * a_frames
    slack = SLACK.get(backend, 1.5) if cuda else 1.0
    try:
        weights = voice.model_path.stat().st_size / 2**20
    except OSError:
        weights = 64.0
    copies = 1.5 if half else 1.0  # fp32 master weights plus a half-precision vocoder
    mb = 2**20
    return MemoryEstimate(
        device=device,
        backend=backend,
        batch_size=batch_size,
        longest_frames=frames,
        vocoder_frames=v_frames,
        overhead_mb=(CUDA_OVERHEAD_MB if cuda else 0.0) + FIXED_MB,
        weights_mb=weights * copies,
        acoustic_mb=slack * acoustic_rows * acoustic / mb,
        vocoder_mb=slack * rows * v_frames * per_frame / mb,
        vocoder_rows=rows,
    )


def available_mb(device: str) -> float | None:
    """Free memory on ``device`` now (GPU: NVML's free; CPU: available RAM); None if unknown."""
    if parse_device(device).is_cuda:
        info = gpu_info_for(device)
        return None if info is None else info.free_mb
    return psutil.virtual_memory().available / 2**20


def default_batch(device: str, backend: str) -> int:
    """Sentences per call when batch_size is 0 (auto): the registry's CUDA figure, else 1."""
    return BACKENDS[backend].cuda_batch if parse_device(device).is_cuda else 1


def fit_batch(
    settings: SynthSettings,
    voice: Voice,
    device: str,
    backend: str,
    *,
    free_mb: float | None = None,
) -> tuple[int, str]:
    """The batch size to run with, and a note for the user when it was lowered.

    ``settings.batch_size`` (0: the device's default) is kept when it fits in
    ``HEADROOM`` of the free memory, else lowered to the largest that fits;
    when not even one sentence fits, DeviceError says how much is needed and
    what to change. Unknown free memory keeps the requested batch. ``backend``
    is the resolved one (``ort`` or ``torch``, as devices.choose_device picked).
    """
    requested = settings.batch_size or default_batch(device, backend)
    free = available_mb(device) if free_mb is None else free_mb
    if free is None:
        return requested, ""
    budget = free * HEADROOM
    need = estimate_memory(settings, voice, device, backend, requested)
    if need.total_mb <= budget:
        return requested, ""
    where = (
        f"{device} has {free:,.0f} MB free"
        if device != "cpu"
        else (f"the machine has {free:,.0f} MB of RAM available")
    )
    low, high = 0, requested  # largest fitting batch in (low, high)
    while high - low > 1:
        mid = (low + high) // 2
        if estimate_memory(settings, voice, device, backend, mid).total_mb <= budget:
            low = mid
        else:
            high = mid
    if low >= 1:
        return low, (
            f"batch size lowered from {requested} to {low} to fit memory: {need.describe()}; "
            f"{where}"
        )
    one = estimate_memory(settings, voice, device, backend, 1)
    raise DeviceError(
        f"not enough memory on {device}: {one.describe()}; {where}",
        hint=_memory_hint(settings, voice, device, backend, budget),
    )


def _memory_hint(
    settings: SynthSettings, voice: Voice, device: str, backend: str, budget: float
) -> str:
    shorter = max(20, settings.max_sentence_phonemes // 2)
    if backend == "torch" and parse_device(device).is_cuda:
        # Packed rows: the vocoder's shape does not follow chunk_frames, so no chunk hint.
        return f"try --max-sentence-phonemes {shorter}, --backend ort, or --device cpu"
    for chunk in (1024, 512, 256, 128, 64):
        if settings.chunk_frames and chunk >= settings.chunk_frames:
            continue
        trial = settings.replace(chunk_frames=chunk)
        if estimate_memory(trial, voice, device, backend, 1).total_mb <= budget:
            return f"vocode in pieces with --chunk-frames {chunk}, or free memory on {device}"
    alternative = "--device cpu" if device != "cpu" else "a machine with more memory"
    return f"try --max-sentence-phonemes {shorter} --chunk-frames 64, or {alternative}"
