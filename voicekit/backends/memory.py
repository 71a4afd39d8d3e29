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
at a time).

``torch`` on CUDA, or with a batch above 1, runs the packed shape policy, priced
by ``packed_memory`` from the shapes it keeps (``backends/torch/shapes.py``):
with CUDA graphs, each captured shape's static buffers (its input copies and
outputs: exact), one private pool per stage (durations, flow, decoder) holding
its largest shape's temporaries, the eager warm-up of a stage's largest shape
while its pool holds the next largest (the load peak), and one call's eager
tensors (the duration outputs kept for the call's sentences, a row batch's flow
inputs), and, on CUDA where calls overlap, the next call's duration outputs and
inputs beside them. Without graphs, one allocator: the largest stage's temporaries
(the durations' beside the larger of flow and decoder's, when calls overlap) plus
the call's tensors. Temporaries per shape come from live-tensor peaks measured on
meta tensors through the real model (tests/backends/test_memory.py):

    durations(rows r, width w) = r x (ID_BYTES x w + ATTENTION_BYTES x w^2) + INDEX_BYTES x w^2
    flow(r, w)                 = FLOW_TENSORS x 4 x C x r x w
    decoder(r, w)              = TORCH_DECODER_SHARE x vocoder(frame) x r x w

``slack`` multiplies the measured-from-the-model parts (pools, warm-up, call, overlap),
not the exact static buffers.

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
    ID_WINDOW,
    MAX_PACK_ROWS,
    PACK_WINDOW,
    batch_groups,
    id_row_shapes,
    pack_row_shapes,
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
# The packed torch policy's temporaries, from peak live tensor bytes of the real model on
# meta tensors (bundled en_US medium voice; tests/backends/test_memory.py re-measures):
# durations (1, 256) 4.25 MB, (1, 1,024) 52.1 MB, (16, 1,024) 690 MB; flow 13 x 4 x C
# per frame; torch's decoder 165,924 B per frame, 0.563 of the im2col bound.
ID_BYTES = 6144  # per id in a duration row: hidden 192 x 4 B x ~7 live tensors (fit: 5,429)
ATTENTION_BYTES = 40  # per row and (id, id): 2 heads x 4 B x ~4.4 live [t, t] tensors (35.3)
INDEX_BYTES = 9  # per (id, id), shared by a batch's rows: relative-position indices (8.4)
TORCH_DECODER_SHARE = 0.6  # torch's decoder unfolds no input (0.563 of vocoder(frame))
PACK_SENTENCES_PER_CALL = 512  # as backends/torch/backend.py (which imports torch)


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


@dataclass(frozen=True)
class PackedMemory:
    """Bytes the packed torch policy holds, by what holds them (see the module docstring)."""

    shapes: dict[str, list[tuple[int, int]]]
    """(rows, width) of every shape each stage runs at (all captured at load on CUDA)."""
    static: dict[str, int]
    """Per stage: the captured graphs' input copies and outputs over its shapes (exact)."""
    pools: dict[str, int]
    """Per stage: its private pool, the temporaries of its largest shape."""
    warmup: int
    """Eager warm-up of a stage's largest shape while its pool holds the next largest."""
    warmup_stage: str
    call: int
    """One call's eager tensors: duration outputs kept for its sentences, row inputs."""
    graphs: bool
    overlap: int = 0
    """The next call's acoustic work beside this call's flow and decoder (calls overlap
    on CUDA): its kept duration outputs and one duration batch's inputs."""

    def total(self, slack: float = 1.0) -> float:
        measured = sum(self.pools.values()) + self.warmup + self.call + self.overlap
        if not self.graphs:  # one caching allocator: the largest stage at a time
            largest = max(self.pools.values())
            if self.overlap:  # the next call's durations run beside this call's vocoder
                largest = self.pools["durations"] + max(self.pools["flow"], self.pools["decoder"])
            measured = largest + self.call + self.overlap
        return sum(self.static.values()) + slack * measured

    def stage(self, name: str, slack: float = 1.0) -> float:
        """A stage's static buffers and pool (its temporaries alone without graphs), and
        the load's warm-up peak where it is this stage's."""
        warmup = self.warmup if self.graphs and self.warmup_stage == name else 0
        return self.static[name] + slack * (self.pools[name] + warmup)


def temporaries(stage: str, rows: int, width: int, channels: int, dec_frame: float) -> int:
    """Peak temporary bytes of one call of ``stage`` at (rows, width), outputs included."""
    if stage == "durations":
        per_row = ID_BYTES * width + ATTENTION_BYTES * width * width
        return rows * per_row + INDEX_BYTES * width * width
    if stage == "flow":
        return FLOW_TENSORS * 4 * channels * rows * width
    return math.ceil(TORCH_DECODER_SHARE * dec_frame * rows * width)


def static_bytes(stage: str, rows: int, width: int, channels: int, hop: int) -> int:
    """A captured graph's input copies and outputs at (rows, width) (fp32 in and out)."""
    positions = rows * width
    if stage == "durations":  # ids, segments (int64), noise [2]; w_ceil [1], m_p, logs_p [C]
        return positions * (8 + 8 + 4 * 2 + 4 * (1 + 2 * channels))
    if stage == "flow":  # m, logs, noise [C], mask [1]; z [C]
        return positions * 4 * (4 * channels + 1)
    return positions * 4 * (channels + 1 + hop)  # z [C], mask [1]; audio [hop]


def packed_memory(
    shape: DecoderShape,
    batch: int,
    *,
    graphs: bool,
    half: bool = False,
    longest_ids: int = 801,
    longest_frames: int = 1620,
    overlap: bool = False,
) -> PackedMemory:
    """What the packed torch policy holds at ``batch`` (the backend's batch_size) for
    sentences of up to ``longest_ids`` ids and ``longest_frames`` frames; ``overlap``:
    with the next call's durations running beside a call's flow and decoder (CUDA)."""
    c, hop = shape.channels, shape.hop
    dec_frame = shape.floats_per_frame * (2 if half else 4)
    shapes = {
        "durations": id_row_shapes(batch),
        "flow": pack_row_shapes(batch),
        "decoder": pack_row_shapes(batch),
    }
    static: dict[str, int] = {}
    pools: dict[str, int] = {}
    warmup, warmup_stage = 0, "decoder"
    for stage, kept in shapes.items():
        sizes = sorted(temporaries(stage, r, w, c, dec_frame) for r, w in kept)
        static[stage] = sum(static_bytes(stage, r, w, c, hop) for r, w in kept) if graphs else 0
        pools[stage] = sizes[-1]
        if len(sizes) > 1 and sizes[-2] > warmup:
            warmup, warmup_stage = sizes[-2], stage
    # A call keeps every duration batch's outputs until its sentences' flow has run:
    # as many rows of ids as the longest sentences fill.
    per_row = max(1, ID_WINDOW // max(1, longest_ids))
    id_rows = math.ceil(max(batch, PACK_SENTENCES_PER_CALL) / per_row)
    kept = id_rows * ID_WINDOW * 4 * (1 + 2 * c)
    rows, width = max(shapes["flow"])
    row_inputs = rows * width * 4 * (3 * c + 1)  # m, logs, noise and mask of a row batch
    expanded = 3 * 4 * c * longest_frames  # one utterance's m, logs and noise
    call = kept + row_inputs + expanded
    # Overlapping calls (synth/calls.py): call N+1's durations keep their outputs while
    # call N's are still held (freed on the host, kept by the allocator until N's flow
    # has read them), beside one duration batch's inputs (ids, segments and owners as
    # int64, noise [2] as float32). Its temporaries are in the durations' pool with
    # graphs; without, ``total`` adds them beside the vocoder's.
    rows_d, width_d = max(shapes["durations"])
    overlapping = kept + rows_d * width_d * (3 * 8 + 2 * 4) if overlap else 0
    return PackedMemory(shapes, static, pools, warmup, warmup_stage, call, graphs, overlapping)


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
    slack = SLACK.get(backend, 1.5) if cuda else 1.0
    mb = 2**20
    if backend == "torch" and (cuda or batch_size > 1):
        packed = packed_memory(
            shape,
            batch_size,
            graphs=cuda and settings.cuda_graphs,
            half=half,
            longest_ids=ids,
            longest_frames=frames,
            overlap=cuda,  # TorchBackend.overlaps_calls: calls overlap on CUDA only
        )
        vocoder_mb = packed.stage("decoder", slack) / mb
        acoustic_mb = packed.total(slack) / mb - vocoder_mb
    else:
        acoustic = ALIGN_BYTES * ids * frames + FLOW_TENSORS * 4 * shape.channels * frames
        acoustic_mb = slack * batch_size * acoustic / mb
        vocoder_mb = slack * rows * v_frames * per_frame / mb
    try:
        weights = voice.model_path.stat().st_size / 2**20
    except OSError:
        weights = 64.0
    copies = 1.5 if half else 1.0  # fp32 master weights plus a half-precision vocoder
    return MemoryEstimate(
        device=device,
        backend=backend,
        batch_size=batch_size,
        longest_frames=frames,
        vocoder_frames=v_frames,
        overhead_mb=(CUDA_OVERHEAD_MB if cuda else 0.0) + FIXED_MB,
        weights_mb=weights * copies,
        acoustic_mb=acoustic_mb,
        vocoder_mb=vocoder_mb,
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
