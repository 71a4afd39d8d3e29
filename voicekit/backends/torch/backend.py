"""TorchBackend: our own VITS in PyTorch, batched, packed and graph-captured on CUDA.

Two shape policies:

- packed (CUDA, and any run with a batch size above 1): a call takes up to 512
  sentences. Text encoder and duration predictor run on rows of ``ID_WINDOW`` ids
  holding many sentences, a gap apart, attention masked per sentence
  (``shapes.id_rows``), and the call's frame counts come back in one host sync.
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
Nothing outlives a call but the weights and the captured graphs.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from voicekit.backends.base import BACKENDS, Noise, Scales, Utterance, chunk_spans, resolve_scales
from voicekit.backends.ort import physical_cores
from voicekit.backends.torch.decoder import flow_receptive_field, receptive_field
from voicekit.backends.torch.duration import duration_reach
from voicekit.backends.torch.graphs import GraphCache
from voicekit.backends.torch.model import Vits, build_model, expand
from voicekit.backends.torch.shapes import (
    CPU_FRAME_BUDGET,
    CUDA_FRAME_BUDGET,
    CUDA_VOCODER_BATCH,
    ID_WINDOW,
    MAX_PACK_ROWS,
    PACK_WINDOW,
    PAD_BATCHES,
    IdRow,
    Piece,
    batch_groups,
    id_row_shapes,
    id_rows,
    pack_row_shapes,
    pack_rows,
    pad_lengths,
    padded_shape,
    row_batches,
    tail_width,
)
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


def _as_tensor(latent: Any) -> torch.Tensor | np.ndarray:
    """A latent as [channels, frames]: torch tensor, numpy array, or an object with ``.z``."""
    z = getattr(latent, "z", latent)
    if isinstance(z, np.ndarray) and z.ndim == 3:
        z = z[0]
    return z  # type: ignore[no-any-return]


@dataclass
class _Placed:
    item: int
    row: int
    src: slice
    dst: slice


def _width(placed: Sequence[Piece], window: int) -> int:
    """Row width of a batch: the full window, or narrower for a lone last row."""
    if len({p.row for p in placed}) > 1:
        return window
    return tail_width(max((p.offset + p.stop - p.start for p in placed), default=1), window)


class PendingAudio:
    """Vocoder output on its way to the host; ``result()`` waits for it."""

    def __init__(self, sizes: list[int]) -> None:
        self._out = [np.empty(n, dtype=np.float32) for n in sizes]
        self._parts: list[tuple[Any, torch.Tensor, list[_Placed]]] = []

    def add(self, event: Any, host: torch.Tensor, placed: list[_Placed]) -> None:
        self._parts.append((event, host, placed))

    def result(self) -> list[np.ndarray]:
        for event, host, placed in self._parts:
            if event is not None:
                event.synchronize()
            rows = host.numpy()
            for p in placed:
                self._out[p.item][p.dst] = rows[p.row, p.src]
        self._parts.clear()
        return self._out


class TorchVocoder:
    """The decoder over windows of latents, batched by similar length."""

    def __init__(self, backend: TorchBackend) -> None:
        self._b = backend
        self.hop = backend.arch.hop

    def __call__(self, latents: Sequence[Any]) -> list[np.ndarray]:
        with self._b.device_context():
            return self.submit(latents).result()

    def submit(self, latents: Sequence[Any]) -> PendingAudio:
        """Queue the vocoding of ``latents`` (on the vocoder stream on CUDA)."""
        zs = [_as_tensor(lat) for lat in latents]
        with self._b.on_stream("vocoder", inputs=[z for z in zs if isinstance(z, torch.Tensor)]):
            return self._submit(zs)

    def _submit(self, zs: list[torch.Tensor | np.ndarray]) -> PendingAudio:
        if self._b.packing:
            return self._submit_packed(zs)
        b, hop = self._b, self.hop
        pending = PendingAudio([int(z.shape[-1]) * hop for z in zs])
        windows = [
            (i, span)
            for i, z in enumerate(zs)
            for span in chunk_spans(int(z.shape[-1]), b.chunk_frames, b.overlap_frames)
        ]
        windows.sort(key=lambda w: w[1].stop - w[1].start, reverse=True)
        for group in b.vocoder_groups([w[1].stop - w[1].start for w in windows]):
            rows = [windows[k] for k in group]
            longest = max(span.stop - span.start for _, span in rows)
            n_batch, n_frames = b.shape_for(len(rows), longest)
            x = torch.zeros(n_batch, b.arch.inter, n_frames, device=b.device, dtype=b.dec_dtype)
            lengths = torch.ones(n_batch, dtype=torch.int64)
            placed = []
            for r, (i, span) in enumerate(rows):
                n = span.stop - span.start
                piece = zs[i][:, span.start : span.stop]
                if isinstance(piece, np.ndarray):
                    piece = b.upload(np.ascontiguousarray(piece, dtype=np.float32))
                x[r, :, :n] = piece.to(b.device, non_blocking=True)
                lengths[r] = n
                keep = slice(
                    (span.keep_start - span.start) * hop, (span.keep_stop - span.start) * hop
                )
                placed.append(
                    _Placed(i, r, keep, slice(span.keep_start * hop, span.keep_stop * hop))
                )
            if all(int(n) == n_frames for n in lengths[: len(rows)]):
                # No real row is padded in time (full chunk windows, or one item alone):
                # skip the masks. Padding rows only compute junk of their own.
                (audio,) = b.run("dec", x, None)
            else:
                (audio,) = b.run("dec", x, b.upload(lengths.numpy()))
            event, host = b.to_host(audio[: len(rows)].reshape(len(rows), -1))
            pending.add(event, host, placed)
            del x, audio
        return pending


    def _submit_packed(self, zs: list[torch.Tensor | np.ndarray]) -> PendingAudio:
        b = self._b
        frames = [int(z.shape[-1]) for z in zs]
        pending = PendingAudio([n * self.hop for n in frames])
        rows, pieces = pack_rows(frames, b.window, b.gap, b.vocoder_overlap)
        by_row: dict[int, list[Piece]] = {}
        for p in pieces:
            by_row.setdefault(p.row, []).append(p)
        for rows_of in row_batches(rows, min(MAX_PACK_ROWS, b.vocoder_batch), True):
            placed = [p for row in rows_of for p in by_row[row]]
            width = _width(placed, b.window)
            x = torch.zeros(len(rows_of), b.arch.inter, width, device=b.device)
            mask = np.zeros((len(rows_of), 1, width), dtype=np.float32)
            for p in placed:
                r, span = p.row - rows_of.start, slice(p.offset, p.offset + p.stop - p.start)
                piece = zs[p.item][:, p.start : p.stop]
                if isinstance(piece, np.ndarray):
                    piece = torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32))
                x[r, :, span] = piece.to(b.device, non_blocking=True)
                mask[r, 0, span] = 1.0
            b._decode_rows(x, b.upload(mask), placed, rows_of.start, pending)
        return pending


class TorchAcoustic:
    """Phoneme ids -> latents [channels, frames] (device tensors), in input order."""

    def __init__(self, backend: TorchBackend) -> None:
        self._b = backend
        self.channels = backend.arch.inter

    def __call__(self, batch: Sequence[Utterance]) -> list[torch.Tensor]:
        out: list[torch.Tensor | None] = [None] * len(batch)
        with self._b.device_context():
            for group in self._b.acoustic_groups(batch):
                for i, z in zip(group, self.group([batch[i] for i in group]), strict=True):
                    out[i] = z
            self._b.join_stream("acoustic")
        return [z for z in out if z is not None]

    def group(self, utts: Sequence[Utterance]) -> list[torch.Tensor]:
        """One padded batch through encoder, durations, prior and flow (acoustic stream)."""
        with self._b.on_stream("acoustic"):
            return self._group(utts)

    def _group(self, utts: Sequence[Utterance]) -> list[torch.Tensor]:
        b = self._b
        count = len(utts)
        lengths = [len(u.ids) for u in utts]
        n_batch, n_text = b.shape_for(count, max(lengths))
        noises = [Noise(u.key) for u in utts]
        ids = np.zeros((n_batch, n_text), dtype=np.int64)
        text_lengths = np.ones(n_batch, dtype=np.int64)  # dummy rows: one pad phoneme
        dp_noise = np.zeros((n_batch, 2, n_text), dtype=np.float32)
        for i, (utt, noise) in enumerate(zip(utts, noises, strict=True)):
            ids[i, : lengths[i]] = utt.ids
            text_lengths[i] = lengths[i]
            dp_noise[i, :, : lengths[i]] = noise.duration(lengths[i])  # drawn first, always
        w_ceil, m_p, logs_p = b.run(
            "durations", b.upload(ids), b.upload(text_lengths), b.upload(dp_noise)
        )
        totals = w_ceil.sum(dim=(1, 2)).cpu().numpy()  # the one host sync per group
        frames = [max(1, int(t)) for t in totals[:count]]
        _, n_frames = b.shape_for(count, max(frames))
        m, logs = expand(w_ceil, m_p, logs_p, n_frames)
        del w_ceil, m_p, logs_p
        prior = np.zeros((n_batch, self.channels, n_frames), dtype=np.float32)
        frame_lengths = np.ones(n_batch, dtype=np.int64)
        for i, noise in enumerate(noises):
            prior[i, :, : frames[i]] = noise.prior(self.channels, frames[i])
            frame_lengths[i] = frames[i]
        (z,) = b.run("flow", m, logs, b.upload(prior), b.upload(frame_lengths))
        # The graph's output buffer is reused by the next replay: keep a copy.
        z = z[:count, :, : max(frames)].clone()
        return [z[i, :, : frames[i]] for i in range(count)]


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
    ) -> None:
        self.device = device
        self._device = torch.device(device)
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
        self.acoustic = TorchAcoustic(self)
        self.vocoder = TorchVocoder(self)
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

    def to_host(self, audio: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """Start copying ``audio`` to the host; (event to wait on or None, host tensor)."""
        if not self.cuda:
            return None, audio
        host = torch.empty(audio.shape, dtype=audio.dtype, pin_memory=True)
        host.copy_(audio, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        return event, host

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
        for t in inputs:
            if t.is_cuda:
                t.record_stream(stream)  # made on another stream, used on this one
        with torch.cuda.stream(stream):
            yield

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
        if self.packing:
            with self.device_context():
                return self._synthesize_packed(batch).result()
        results: list[np.ndarray | None] = [None] * len(batch)
        pending: list[tuple[list[int], PendingAudio]] = []
        with self.device_context():
            for group in self.acoustic_groups(batch):
                pending.append((group, self._one_group(batch, group)))
            for group, audio in pending:
                for i, samples in zip(group, audio.result(), strict=True):
                    results[i] = samples
        return [r for r in results if r is not None]

    def _one_group(self, batch: Sequence[Utterance], group: list[int]) -> PendingAudio:
        # On CUDA the vocoder work is queued, not waited for: the next group's acoustic
        # stage runs on its stream meanwhile (its one host sync waits on that stream only).
        return self.vocoder.submit(self.acoustic.group([batch[i] for i in group]))

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
        """Run durations at each of ``id_row_shapes``, flow and decoder at each of
        ``row_shapes``, once (captures them on CUDA)."""
        c = self.arch.inter
        with self.device_context(), self.on_stream("acoustic"):
            for rows, width in self.id_row_shapes():
                ids = torch.zeros(rows, width, dtype=torch.int64, device=self._device)
                noise = torch.zeros(rows, 2, width, device=self._device)
                self.run("duration_rows", ids, torch.ones_like(ids), noise)
        self.join_stream("acoustic")
        with self.device_context(), self.on_stream("vocoder"):
            for rows, width in self.row_shapes():
                zeros = torch.zeros(rows, c, width, device=self._device)
                mask = torch.ones(rows, 1, width, device=self._device)
                (z,) = self.run("flow_rows", zeros, zeros, zeros, mask)
                self.run("dec_rows", z, mask)
        self.join_stream("vocoder")

    def _synthesize_packed(self, batch: Sequence[Utterance]) -> PendingAudio:
        """Durations over packed rows of ids, then flow and decoder over packed rows of frames."""
        c = self.arch.inter
        noises = [Noise(u.key) for u in batch]
        stats: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None] = [None] * len(batch)
        lengths = [len(u.ids) for u in batch]
        with self.on_stream("acoustic"):
            # Each sentence's frame total, summed on the device; the last slot takes gaps.
            totals = torch.zeros(len(batch) + 1, device=self._device)
            for width, id_batch in self.duration_batches(lengths):
                ids = np.zeros((len(id_batch), width), dtype=np.int64)
                segments = np.zeros((len(id_batch), width), dtype=np.int64)
                owner = np.full((len(id_batch), width), len(batch), dtype=np.int64)
                dp_noise = np.zeros((len(id_batch), 2, width), dtype=np.float32)
                for r, row in enumerate(id_batch):
                    for k, (i, offset) in enumerate(row):
                        span = slice(offset, offset + lengths[i])
                        ids[r, span] = batch[i].ids
                        segments[r, span] = k + 1
                        owner[r, span] = i
                        dp_noise[r, :, span] = noises[i].duration(lengths[i])  # drawn first
                useful = sum(lengths[i] for row in id_batch for i, _ in row)
                self.count("durations", useful, ids.size)
                outs = self.run(
                    "duration_rows", self.upload(ids), self.upload(segments), self.upload(dp_noise)
                )
                # Graph outputs are reused by the next replay of this shape: keep copies.
                w_ceil, m_p, logs_p = (t.clone() for t in outs)
                for r, row in enumerate(id_batch):
                    for i, offset in row:
                        span = slice(offset, offset + lengths[i])
                        row_of = slice(r, r + 1)
                        stats[i] = (w_ceil[row_of, :, span], m_p[row_of, :, span],
                                    logs_p[row_of, :, span])
                # Sums of whole frame counts: exact in float32 in any order.
                totals.index_add_(0, self.upload(owner.reshape(-1)), w_ceil.reshape(-1))
            # One host sync per call, after every duration group is queued.
            flat = totals[:-1].cpu().numpy()
        frames = [max(1, int(t)) for t in flat]
        rows, pieces = pack_rows(frames, self.window, self.gap, self.pack_overlap)
        left = [0] * len(batch)
        for p in pieces:
            left[p.item] += 1
        expanded: dict[int, tuple[torch.Tensor, torch.Tensor, np.ndarray]] = {}

        def source(p: Piece) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
            if p.item not in expanded:
                w_ceil, m_p, logs_p = stats[p.item]  # type: ignore[misc]
                m, logs = expand(w_ceil, m_p, logs_p, frames[p.item])
                expanded[p.item] = (m[0], logs[0], noises[p.item].prior(c, frames[p.item]))
            got = expanded[p.item]
            left[p.item] -= 1
            if not left[p.item]:
                del expanded[p.item]
                stats[p.item] = None
            return got

        pending = PendingAudio([n * self.arch.hop for n in frames])
        self.count("flow", sum(frames), 0)
        by_row: dict[int, list[Piece]] = {}
        for p in pieces:
            by_row.setdefault(p.row, []).append(p)
        for rows_of in row_batches(rows, min(MAX_PACK_ROWS, self.vocoder_batch), True):
            placed = [p for row in rows_of for p in by_row[row]]
            width = _width(placed, self.window)
            with self.on_stream("vocoder", inputs=[]):
                m = torch.zeros(len(rows_of), c, width, device=self._device)
                logs = torch.zeros_like(m)
                prior = np.zeros((len(rows_of), c, width), dtype=np.float32)
                mask = np.zeros((len(rows_of), 1, width), dtype=np.float32)
                for p in placed:
                    pm, plogs, pnoise = source(p)
                    r, span = p.row - rows_of.start, slice(p.offset, p.offset + p.stop - p.start)
                    m[r, :, span] = pm[:, p.start : p.stop]
                    logs[r, :, span] = plogs[:, p.start : p.stop]
                    prior[r, :, span] = pnoise[:, p.start : p.stop]
                    mask[r, 0, span] = 1.0
                mask_dev = self.upload(mask)
                self.computed["flow"] = self.computed.get("flow", 0) + m.shape[0] * width
                (z,) = self.run("flow_rows", m, logs, self.upload(prior), mask_dev)
                self._decode_rows(z, mask_dev, placed, rows_of.start, pending)
        return pending

    def _decode_rows(
        self,
        z: torch.Tensor,
        mask: torch.Tensor,
        placed: list[Piece],
        first_row: int,
        pending: PendingAudio,
    ) -> None:
        """Packed rows of latents through the decoder; each piece's kept samples to ``pending``."""
        hop = self.arch.hop
        real = sum(p.keep_stop - p.keep_start for p in placed)
        self.count("vocoder", real, z.shape[0] * z.shape[-1])
        (audio,) = self.run("dec_rows", z, mask)
        event, host = self.to_host(audio.reshape(audio.shape[0], -1))
        pending.add(
            event,
            host,
            [
                _Placed(
                    p.item,
                    p.row - first_row,
                    slice(
                        (p.offset + p.keep_start - p.start) * hop,
                        (p.offset + p.keep_stop - p.start) * hop,
                    ),
                    slice(p.keep_start * hop, p.keep_stop * hop),
                )
                for p in placed
            ],
        )

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
