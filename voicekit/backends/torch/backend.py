"""TorchBackend: our own VITS in PyTorch, batched, packed and graph-captured on CUDA.

Two shape policies:

- packed (CUDA, and any run with a batch size above 1): a call takes up to 512
  sentences. Text encoder and duration predictor run on rows of ``ID_WINDOW`` ids
  holding many sentences, a gap apart, attention masked per sentence
  (``shapes.id_rows``), and the call's frame counts come back in one
  asynchronous read (``transfer.HostCopy``); the prior noise is drawn in a thread
  pool, real frames only (``noise.PriorNoise``).
  Flow and decoder then run on rows of ``PACK_WINDOW`` latent frames that hold
  many utterances end to end (``shapes.pack_rows``), with a gap of zeros
  between them and every convolution's input masked, so each utterance's samples
  equal a run of its own; utterances longer than a row are cut with the flow's
  and decoder's receptive fields as context. Row batches are 32 rows and powers
  of two below (a lone last row narrower): a handful of shapes for a whole book,
  captured at load on CUDA, and little padding (``padding_efficiency``).
- one by one (the CPU default): each sentence alone at its own shape, the
  vocoder in ``chunk_frames`` windows when asked.

On CUDA durations run on a high-priority stream and flow + decoder on another.
Nothing outlives a call's ``result()`` but the weights and the captured graphs; the
pipeline submits call N+1 before it takes call N's audio, so N+1's durations (acoustic
stream) run beside N's flow and decoder (vocoder stream). What makes that safe (none
of it is checked on a GPU yet; the CPU runs the same calls without streams):

- Memory made on the acoustic stream and read on the vocoder stream (the duration
  outputs a call keeps for its flow: ``packed.durations``; the one-by-one policy's
  latents) is handed over (``hand_over``: record_stream) before it is freed, so the
  caching allocator does not give it to N+1's acoustic work while N's vocoder reads it.
  Nothing made on the vocoder stream is read on the acoustic one.
- Each ``GraphCache`` has its own pool and replays on one stream only (durations on the
  acoustic stream, flow and decoder on the vocoder stream), so concurrent replays never
  share memory. A graph's outputs are its own buffers, reused by the next replay of that
  shape: duration outputs are cloned, flow rows feed the decoder, and the decoder's rows
  are copied to the host, each queued right after the replay on the replay's stream.
- Pinned host buffers (uploads, the prior noise, ``HostCopy``) come from torch's
  caching host allocator, which records an event behind each non-blocking copy and
  reuses a freed buffer only once that event has passed: a call dropped with copies in
  flight (Ctrl-C) leaves nothing to overwrite.
- The host waits on events only (the totals of its own call; the audio in ``result``),
  never on a stream or the device, so N+1's submit does not wait for N's vocoder.

Modules: this one holds the model's callable pieces, streams and transfers;
``packed`` runs a packed call, ``stages`` the acoustic and vocoder stages,
``shapes`` says which shapes (without torch), ``graphs`` captures them,
``noise`` draws the prior noise, ``transfer`` copies to the host.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from voicekit.backends.base import BACKENDS, Scales, StageTimes, Utterance, resolve_scales
from voicekit.backends.ort import physical_cores
from voicekit.backends.torch import packed
from voicekit.backends.torch.decoder import flow_receptive_field, receptive_field
from voicekit.backends.torch.duration import duration_reach
from voicekit.backends.torch.graphs import GraphCache
from voicekit.backends.torch.model import Vits, build_model
from voicekit.backends.torch.noise import noise_pool
from voicekit.backends.torch.shapes import (
    CPU_FRAME_BUDGET,
    CUDA_FRAME_BUDGET,
    CUDA_VOCODER_BATCH,
    ID_WINDOW,
    PACK_WINDOW,
    PAD_BATCHES,
    IdRow,
    batch_groups,
    id_row_shapes,
    id_rows,
    pack_row_shapes,
    pad_lengths,
    padded_shape,
)
from voicekit.backends.torch.stages import TorchAcoustic, TorchVocoder
from voicekit.backends.torch.transfer import PendingAudio, QueuedCall
from voicekit.backends.torch.weights import VoiceWeights, load_weights
from voicekit.backends.voices import Voice
from voicekit.errors import DeviceError
from voicekit.settings import SynthSettings

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CUDA_ACOUSTIC_BATCH = 32
CUDA_SENTENCES_PER_CALL = BACKENDS["torch"].cuda_sentences_per_call
PACK_SENTENCES_PER_CALL = 512
"""Sentences per call when packing: enough that the last, part-filled row is noise."""
Fn = Callable[..., tuple[torch.Tensor, ...]]


class TorchBackend:
    """Both stages on our PyTorch VITS; see the module docstring."""

    name = "torch"

    def __init__(
        self,
        voice: Voice,
        settings: SynthSettings,
        device: str,
        *,
        weights: VoiceWeights | None = None,
        pad_shapes: bool | None = None,
        packing: bool | None = None,
        noise_threads: int | None = None,
    ) -> None:
        self.device = device
        self._device = self.torch_device = torch.device(device)
        cuda = self._device.type == "cuda"
        if cuda and not torch.cuda.is_available():
            raise DeviceError(f"torch cannot use {device}: CUDA is not available")
        if not cuda:
            torch.set_num_threads(settings.threads or physical_cores())
        self.cuda = cuda
        weights = weights or load_weights(voice.model_path, voice.config)
        self.arch = weights.arch
        self.rf = receptive_field(self.arch)
        if settings.chunk_frames and settings.overlap_frames < max(self.rf):
            log.warning(
                "overlap of %d frames is below the decoder's receptive field (%d): "
                "chunk seams will differ slightly",
                settings.overlap_frames,
                max(self.rf),
            )
        self.scales: Scales = resolve_scales(voice, settings)
        self.model: Vits = build_model(weights).to(self._device)
        self.precision = settings.precision if cuda else "fp32"
        if settings.precision != "fp32" and not cuda:
            log.info("precision %s applies on CUDA only; the CPU runs fp32", settings.precision)
        self.dec_dtype = DTYPES[self.precision]
        self.dec = self.model.dec
        if self.dec_dtype != torch.float32:
            self.dec = copy.deepcopy(self.model.dec).to(self.dec_dtype)
        self.chunk_frames = settings.chunk_frames
        self.overlap_frames = settings.overlap_frames
        # On CUDA shapes are padded to a few sizes even without graphs: cuDNN autotunes
        # each new shape once, and a few shapes keep that cost (and compiles) bounded.
        self.pad_shapes = cuda if pad_shapes is None else pad_shapes
        per_call = settings.batch_size
        self.acoustic_batch = per_call or (CUDA_ACOUSTIC_BATCH if cuda else 1)
        self.vocoder_batch = per_call or (CUDA_VOCODER_BATCH if cuda else 1)
        self.pad_lengths = pad_lengths(settings.chunk_frames, settings.overlap_frames)
        self.frame_budget = CUDA_FRAME_BUDGET if cuda else CPU_FRAME_BUDGET
        self.batch_sentences = per_call or (CUDA_SENTENCES_PER_CALL if cuda else 1)
        # The packed shape policy: on CUDA, and wherever sentences are batched. Calls
        # then take many sentences (the budget is padded frames, not a sentence count).
        self.packing = (cuda or per_call > 1) if packing is None else packing
        if self.packing:
            self.batch_sentences = max(self.batch_sentences, PACK_SENTENCES_PER_CALL)
        self.window = PACK_WINDOW
        # Utterances share a row: a gap wider than any one convolution's reach (the
        # decoder's whole receptive field bounds it) keeps them apart, and cut pieces
        # carry enough context for both flow and decoder to be exact where kept.
        self.gap = max(max(self.rf), 2)
        reach = max(self.rf) + flow_receptive_field(self.arch)
        self.pack_overlap = max(settings.overlap_frames, reach)
        self.vocoder_overlap = max(settings.overlap_frames, max(self.rf))
        # Sentences sharing a row of ids: attention is masked per sentence, and every
        # convolution reads masked input, so one convolution's reach of zeros is enough.
        self.id_gap = max(duration_reach(self.arch), 1)
        self.id_window = ID_WINDOW
        self.shapes: dict[str, set[tuple[object, ...]]] = {}
        self.useful: dict[str, int] = {}
        self.computed: dict[str, int] = {}
        self._g = None
        if self.scales.speaker is not None:
            sid = torch.tensor([self.scales.speaker], device=self._device)
            with torch.inference_mode():
                self._g = self.model.speaker(sid)
        self._fns: dict[str, Fn] = self._make_fns(settings)
        # One stream per stage, so each graph cache always replays on the same stream
        # and the acoustic stage of one group can overlap the vocoder of the last. The
        # acoustic stream has priority (-1, the higher): the host waits on its totals,
        # so its kernels must not queue behind the vocoder's (not yet run on a GPU).
        self._streams: dict[str, Any] = (
            {
                "acoustic": torch.cuda.Stream(self._device, priority=-1),
                "vocoder": torch.cuda.Stream(self._device),
            }
            if cuda
            else {}
        )
        # Submit call N+1 before taking call N's audio (base.Submitting) where the device
        # works while the host goes on; on the CPU a submit is the call's whole work.
        self.overlaps_calls = cuda
        self.acoustic = TorchAcoustic(self)
        self.vocoder = TorchVocoder(self)
        # Packed calls draw their prior noise here (None: on the calling thread).
        self.noise_pool = noise_pool(noise_threads) if self.packing else None
        self.times = StageTimes()
        if cuda and self.packing and settings.cuda_graphs:
            # Capture the duration, flow and decoder shapes now, so memory is flat from the first
            # call on and no call pays a capture (cuDNN tuning, warm-ups, a device sync).
            self.prepare_shapes()

    # -- the three graph-capturable pieces -------------------------------------------------
    def _make_fns(self, settings: SynthSettings) -> dict[str, Fn]:
        model, s = self.model, self.scales
        dec, dtype = self.dec, self.dec_dtype

        def speaker(n: int, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
            return None if self._g is None else self._g.expand(n, -1, -1).to(dtype)

        def durations(ids: torch.Tensor, lengths: torch.Tensor, noise: torch.Tensor) -> Any:
            g = speaker(ids.shape[0])
            return model.durations(ids, lengths, noise, s.noise_w, s.length_scale, g)

        def duration_rows(ids: torch.Tensor, segments: torch.Tensor, noise: torch.Tensor) -> Any:
            g = speaker(ids.shape[0])
            return model.durations(
                ids, segments, noise, s.noise_w, s.length_scale, g, segments=segments
            )

        def flow(
            m: torch.Tensor, logs: torch.Tensor, noise: torch.Tensor, lengths: torch.Tensor
        ) -> Any:
            g = speaker(m.shape[0])
            return (model.latents(m, logs, noise, s.noise_scale, lengths, g),)

        def vocode(z: torch.Tensor, lengths: torch.Tensor | None) -> Any:
            audio = dec(z.to(dtype), speaker(z.shape[0], dtype), lengths)
            return (audio.float(),)

        def flow_rows(
            m: torch.Tensor, logs: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor
        ) -> Any:
            g = speaker(m.shape[0])
            return (model.latents(m, logs, noise, s.noise_scale, None, g, mask=mask),)

        def vocode_rows(z: torch.Tensor, mask: torch.Tensor) -> Any:
            audio = dec(z.to(dtype), speaker(z.shape[0], dtype), mask=mask)
            return (audio.float(),)

        fns: dict[str, Fn] = {
            "durations": durations,
            "duration_rows": duration_rows,
            "flow": flow,
            "dec": vocode,
            "flow_rows": flow_rows,
            "dec_rows": vocode_rows,
        }
        if settings.compile:
            # Fixed shapes (packing or buckets): one compile per shape, a handful in all;
            # elsewhere let it go dynamic rather than recompile past dynamo's limit.
            # Padded durations (one sentence a row) meet up to ~24 (rows, ids) shapes
            # in a book, past dynamo's recompile limit of 8: let it mark dimensions
            # dynamic. Packed ones (duration_rows) meet the few of id_row_shapes.
            fixed = self.pad_shapes or self.packing
            fns = {
                k: torch.compile(f, dynamic=False if fixed and k != "durations" else None)  # type: ignore[misc]
                for k, f in fns.items()
            }
        if self.cuda and settings.cuda_graphs and (self.pad_shapes or self.packing):
            fns = {k: GraphCache(f) for k, f in fns.items()}
        return fns

    def run(self, name: str, *inputs: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        fn = self._fns[name]
        first = inputs[0]
        oversize = first is not None and (
            first.shape[0] > PAD_BATCHES[-1] or first.shape[-1] > self.pad_lengths[-1]
        )
        if isinstance(fn, GraphCache) and oversize and not name.endswith("_rows"):
            fn = fn.fn  # past the largest bucket: eager, rather than a graph per shape
        self.shapes.setdefault(name, set()).add(
            tuple(None if t is None else tuple(t.shape) for t in inputs)
        )
        with torch.inference_mode():
            return fn(*inputs)

    # -- shapes, batches, transfers ---------------------------------------------------------
    def shape_for(self, batch: int, length: int) -> tuple[int, int]:
        return padded_shape(batch, length, self.pad_shapes, self.pad_lengths)

    def acoustic_groups(self, batch: Sequence[Utterance]) -> Iterator[list[int]]:
        """Indices of ``batch`` by length, in groups of ``acoustic_batch``."""
        order = sorted(range(len(batch)), key=lambda i: len(batch[i].ids))
        for start in range(0, len(order), self.acoustic_batch):
            yield order[start : start + self.acoustic_batch]

    def vocoder_groups(self, lengths: Sequence[int]) -> Iterator[list[int]]:
        return batch_groups(
            lengths, self.vocoder_batch, self.frame_budget, self.pad_shapes, self.pad_lengths
        )

    def upload(self, array: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(array)
        if self.cuda:
            return t.pin_memory().to(self._device, non_blocking=True)
        return t

    @contextlib.contextmanager
    def on_stream(self, stage: str, inputs: Sequence[torch.Tensor] = ()) -> Iterator[None]:
        """Run a stage's work on its own CUDA stream, after all work queued before it."""
        stream = self._streams.get(stage)
        if stream is None:
            yield
            return
        stream.wait_stream(torch.cuda.current_stream(self._device))
        if stage == "vocoder":  # its latents come from the acoustic stream
            stream.wait_stream(self._streams["acoustic"])
        self.hand_over(inputs, stage)
        with torch.cuda.stream(stream):
            yield

    def hand_over(self, tensors: Iterable[torch.Tensor], stage: str) -> None:
        """Tensors made on another stream that ``stage``'s stream reads (record_stream).

        The caching allocator ties a block to the stream it was made on: freed, it goes
        straight to that stream's next allocation, which is ordered after the block's uses
        there but not after reads queued on ``stage``'s stream. Recorded, the block waits
        for an event on ``stage``'s stream, taken when it is freed. A no-op on the CPU.
        """
        stream = self._streams.get(stage)
        if stream is None:
            return
        for t in tensors:
            if t.is_cuda:
                t.record_stream(stream)

    def join_stream(self, stage: str) -> None:
        """Make the caller's stream wait for a stage's queued work."""
        stream = self._streams.get(stage)
        if stream is not None:
            torch.cuda.current_stream(self._device).wait_stream(stream)

    @contextlib.contextmanager
    def device_context(self) -> Iterator[None]:
        """cuDNN settings for our GPU work: autotuned algorithms; IEEE fp32 (see fp32_ieee)."""
        if not self.cuda:
            with torch.inference_mode():
                yield
            return
        with (
            torch.cuda.device(self._device),
            fp32_ieee(),
            torch.inference_mode(),
        ):
            yield

    # -- the backend protocol -------------------------------------------------------------------
    def synthesize(self, batch: Sequence[Utterance]) -> list[np.ndarray]:
        return self.submit(batch).result()

    def submit(self, batch: Sequence[Utterance]) -> QueuedCall:
        """Queue a call and return; ``result()`` waits for its audio (base.Submitting).

        On CUDA the host waits in here only for the call's duration totals (one event on
        the acoustic stream), never for the vocoder stream, so the pipeline submits call
        N+1 while call N's flow and decoder still run, then takes N's audio. The module
        docstring says why that is safe. On the CPU the work is done in here.
        """
        with self.device_context():
            if self.packing:
                positions = range(len(batch))
                return QueuedCall(
                    [(positions, self._synthesize_packed(batch))], len(batch), self.times
                )
            parts = [(g, self._one_group(batch, g)) for g in self.acoustic_groups(batch)]
        return QueuedCall(parts, len(batch), self.times)

    def take_timings(self) -> dict[str, float]:
        """Host seconds per stage since the last call: on the CPU the work itself; on
        CUDA the launches, and the wait for the audio counts as the vocoder's."""
        return self.times.take()

    def _one_group(self, batch: Sequence[Utterance], group: list[int]) -> PendingAudio:
        # On CUDA the vocoder work is queued, not waited for: the next group's acoustic
        # stage runs on its stream meanwhile (its one host sync waits on that stream only).
        with self.times.timing("acoustic"):
            latents = self.acoustic.group([batch[i] for i in group])
        with self.times.timing("vocoder"):
            return self.vocoder.submit(latents)

    # -- the packed shape policy -----------------------------------------------------------
    def count(self, stage: str, useful: int, computed: int) -> None:
        self.useful[stage] = self.useful.get(stage, 0) + useful
        self.computed[stage] = self.computed.get(stage, 0) + computed

    def padding_efficiency(self) -> dict[str, float]:
        """Useful over computed positions per stage so far (ids for durations, else frames)."""
        out = {k: self.useful[k] / max(1, self.computed[k]) for k in self.computed}
        acoustic = [k for k in ("durations", "flow") if k in self.computed]
        if acoustic:
            out["acoustic"] = sum(self.useful[k] for k in acoustic) / max(
                1, sum(self.computed[k] for k in acoustic)
            )
        return out

    def graph_count(self) -> int:
        """Distinct shapes run so far: CUDA graphs captured or compiles, one per shape."""
        return sum(len(v) for v in self.shapes.values())

    def row_shapes(self) -> list[tuple[int, int]]:
        """(rows, width) of every flow and decoder call the packed policy can make."""
        return pack_row_shapes(self.vocoder_batch, self.window)

    def id_row_shapes(self) -> list[tuple[int, int]]:
        """(rows, width) of every duration call the packed policy can make, but for a
        sentence longer than ``id_window`` (it runs alone, padded)."""
        return id_row_shapes(self.acoustic_batch, self.id_window)

    def duration_batches(self, lengths: Sequence[int]) -> list[tuple[int, list[IdRow]]]:
        """A packed call's duration batches for sentences of ``lengths`` ids: (width, rows)."""
        return id_rows(lengths, self.acoustic_batch, self.id_gap, self.id_window)

    def prepare_shapes(self) -> None:
        """Run every shape a packed call can meet once (captures them on CUDA)."""
        packed.prepare_shapes(self)

    def _synthesize_packed(self, batch: Sequence[Utterance]) -> PendingAudio:
        return packed.synthesize(self, batch)

    def memory(self) -> dict[str, float]:
        """GPU memory (MB) the caching allocator holds now and at its peak; empty on CPU."""
        if not self.cuda:
            return {}
        mb = 2.0**20
        return {
            "allocated_mb": torch.cuda.memory_allocated(self._device) / mb,
            "reserved_mb": torch.cuda.memory_reserved(self._device) / mb,
            "peak_mb": torch.cuda.max_memory_allocated(self._device) / mb,
            "graphs": float(sum(len(f) for f in self._fns.values() if isinstance(f, GraphCache))),
        }

    def close(self) -> None:
        if getattr(self, "noise_pool", None) is not None:
            self.noise_pool.shutdown(wait=True)  # type: ignore[union-attr]
            self.noise_pool = None
        for fn in getattr(self, "_fns", {}).values():
            if isinstance(fn, GraphCache):
                fn.clear()
        self._fns = {}
        self.model = None  # type: ignore[assignment]
        self.dec = None  # type: ignore[assignment]
        self.acoustic = None  # type: ignore[assignment]
        self.vocoder = None  # type: ignore[assignment]
        if self.cuda:
            torch.cuda.synchronize(self._device)
            torch.cuda.empty_cache()


@contextlib.contextmanager
def fp32_ieee() -> Iterator[None]:
    """IEEE fp32 for cuDNN convolutions and cuBLAS matmuls while our stages run.

    cuDNN convolutions default to TF32 on Ampere and later (torch's
    ``cudnn.conv.fp32_precision`` is "tf32"), which would quietly make the "fp32"
    stages 10-bit-mantissa ones, and a ``ceil()`` of durations could then move a
    frame. Only the per-op API of torch >= 2.9 is used: reading or setting the
    legacy TF32 switches after the new API was used raises RuntimeError.
    Reduced precision is the decoder's dtype (fp16/bf16), never TF32.
    """
    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    cudnn = torch.backends.cudnn
    saved = (conv.fp32_precision, matmul.fp32_precision, cudnn.benchmark, cudnn.deterministic)
    conv.fp32_precision = "ieee"
    matmul.fp32_precision = "ieee"
    cudnn.benchmark, cudnn.deterministic = True, False  # autotuned; shapes are few
    try:
        yield
    finally:
        conv.fp32_precision, matmul.fp32_precision = saved[0], saved[1]
        cudnn.benchmark, cudnn.deterministic = saved[2], saved[3]


def create_backend(voice: Voice, settings: SynthSettings, device: str) -> TorchBackend:
    return TorchBackend(voice, settings, device)
