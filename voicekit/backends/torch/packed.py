"""The packed shape policy at run time: durations over rows of ids, flow and decoder
over rows of latent frames (the shapes themselves are in ``shapes``).

A call's sentences are laid end to end in rows of ids for the text encoder and
duration predictor (attention masked per sentence); each sentence's frame count is
summed on the device and read back once per call, asynchronously (``HostCopy``).
Utterances are then laid end to end in rows of frames (``pack_rows``) for the flow
and decoder, their prior noise drawn in a pool (``PriorNoise``), and each kept
piece of the decoder's rows goes to the call's ``PendingAudio``.

``synthesize`` returns with the flow and decoder still queued on the vocoder stream;
the next call's ``durations`` may run meanwhile (backend.py's docstring says why that
is safe).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from voicekit.backends.base import Noise, Utterance
from voicekit.backends.torch.model import expand
from voicekit.backends.torch.noise import PriorNoise
from voicekit.backends.torch.shapes import MAX_PACK_ROWS, Piece, pack_rows, row_batches, tail_width
from voicekit.backends.torch.transfer import HostCopy, PendingAudio, Placed

if TYPE_CHECKING:
    from voicekit.backends.torch.backend import TorchBackend

Stats = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def row_width(placed: Sequence[Piece], window: int) -> int:
    """Row width of a batch: the full window, or narrower for a lone last row."""
    if len({p.row for p in placed}) > 1:
        return window
    return tail_width(max((p.offset + p.stop - p.start for p in placed), default=1), window)


def prepare_shapes(b: TorchBackend) -> None:
    """Run durations at each of ``id_row_shapes``, flow and decoder at each of
    ``row_shapes``, once (captures them on CUDA)."""
    c, device = b.arch.inter, b.torch_device
    with b.device_context(), b.on_stream("acoustic"):
        for rows, width in b.id_row_shapes():
            ids = torch.zeros(rows, width, dtype=torch.int64, device=device)
            noise = torch.zeros(rows, 2, width, device=device)
            b.run("duration_rows", ids, torch.ones_like(ids), noise)
    b.join_stream("acoustic")
    with b.device_context(), b.on_stream("vocoder"):
        for rows, width in b.row_shapes():
            zeros = torch.zeros(rows, c, width, device=device)
            mask = torch.ones(rows, 1, width, device=device)
            (z,) = b.run("flow_rows", zeros, zeros, zeros, mask)
            b.run("dec_rows", z, mask)
    b.join_stream("vocoder")


def durations(
    b: TorchBackend, batch: Sequence[Utterance], noises: Sequence[Noise]
) -> tuple[list[int], list[Stats | None]]:
    """Each sentence's frame count and its (w_ceil, m_p, logs_p) on the device."""
    stats: list[Stats | None] = [None] * len(batch)
    lengths = [len(u.ids) for u in batch]
    with b.on_stream("acoustic"):
        # Each sentence's frame total, summed on the device; the last slot takes gaps.
        totals = torch.zeros(len(batch) + 1, device=b.torch_device)
        for width, id_batch in b.duration_batches(lengths):
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
            b.count("durations", useful, ids.size)
            outs = b.run("duration_rows", b.upload(ids), b.upload(segments), b.upload(dp_noise))
            # Graph outputs are reused by the next replay of this shape: keep copies.
            w_ceil, m_p, logs_p = (t.clone() for t in outs)
            # Made here, on the acoustic stream, and read by ``expand`` on the vocoder
            # stream, possibly while the next call's durations allocate on this one.
            b.hand_over((w_ceil, m_p, logs_p), "vocoder")
            for r, row in enumerate(id_batch):
                for i, offset in row:
                    span = slice(offset, offset + lengths[i])
                    row_of = slice(r, r + 1)
                    stats[i] = (
                        w_ceil[row_of, :, span],
                        m_p[row_of, :, span],
                        logs_p[row_of, :, span],
                    )
            # Sums of whole frame counts: exact in float32 in any order.
            totals.index_add_(0, b.upload(owner.reshape(-1)), w_ceil.reshape(-1))
        # One read per call, after every duration batch is queued: an event on this
        # stream, not a stream sync, and the host free until then.
        copy = HostCopy(totals[:-1], b.cuda)
    return [max(1, int(t)) for t in copy.wait()], stats


def synthesize(b: TorchBackend, batch: Sequence[Utterance]) -> PendingAudio:
    """Durations over packed rows of ids, then flow and decoder over packed rows of frames."""
    c = b.arch.inter
    noises = [Noise(u.key) for u in batch]
    with b.times.timing("acoustic"):
        frames, stats = durations(b, batch, noises)
    rows, pieces = pack_rows(frames, b.window, b.gap, b.pack_overlap)
    by_row: dict[int, list[Piece]] = {}
    for p in pieces:
        by_row.setdefault(p.row, []).append(p)
    order = [p.item for row in sorted(by_row) for p in by_row[row]]
    prior = PriorNoise(noises, c, frames, order, b.noise_pool, b.cuda)
    left = [0] * len(batch)
    for p in pieces:
        left[p.item] += 1
    expanded: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def source(p: Piece) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if p.item not in expanded:
            w_ceil, m_p, logs_p = stats[p.item]  # type: ignore[misc]
            m, logs = expand(w_ceil, m_p, logs_p, frames[p.item])
            noise = prior.get(p.item).to(b.torch_device, non_blocking=True)
            expanded[p.item] = (m[0], logs[0], noise)
        got = expanded[p.item]
        left[p.item] -= 1
        if not left[p.item]:
            del expanded[p.item]
            stats[p.item] = None
        return got

    pending = PendingAudio([n * b.arch.hop for n in frames])
    b.count("flow", sum(frames), 0)
    for rows_of in row_batches(rows, min(MAX_PACK_ROWS, b.vocoder_batch), True):
        placed = [p for row in rows_of for p in by_row[row]]
        width = row_width(placed, b.window)
        # No inputs to hand over: the duration outputs were handed over where they were made.
        with b.on_stream("vocoder"):
            m = torch.zeros(len(rows_of), c, width, device=b.torch_device)
            logs = torch.zeros_like(m)
            noise = torch.zeros_like(m)
            mask = np.zeros((len(rows_of), 1, width), dtype=np.float32)
            for p in placed:
                pm, plogs, pnoise = source(p)
                r, span = p.row - rows_of.start, slice(p.offset, p.offset + p.stop - p.start)
                m[r, :, span] = pm[:, p.start : p.stop]
                logs[r, :, span] = plogs[:, p.start : p.stop]
                noise[r, :, span] = pnoise[:, p.start : p.stop]
                mask[r, 0, span] = 1.0
            mask_dev = b.upload(mask)
            b.count("flow", 0, m.shape[0] * width)
            with b.times.timing("acoustic"):
                (z,) = b.run("flow_rows", m, logs, noise, mask_dev)
            with b.times.timing("vocoder"):
                decode_rows(b, z, mask_dev, placed, rows_of.start, pending)
    return pending


def vocode(b: TorchBackend, zs: list[torch.Tensor | np.ndarray], hop: int) -> PendingAudio:
    """Latents laid end to end in rows of frames through the decoder."""
    frames = [int(z.shape[-1]) for z in zs]
    pending = PendingAudio([n * hop for n in frames])
    rows, pieces = pack_rows(frames, b.window, b.gap, b.vocoder_overlap)
    by_row: dict[int, list[Piece]] = {}
    for p in pieces:
        by_row.setdefault(p.row, []).append(p)
    for rows_of in row_batches(rows, min(MAX_PACK_ROWS, b.vocoder_batch), True):
        placed = [p for row in rows_of for p in by_row[row]]
        width = row_width(placed, b.window)
        x = torch.zeros(len(rows_of), b.arch.inter, width, device=b.torch_device)
        mask = np.zeros((len(rows_of), 1, width), dtype=np.float32)
        for p in placed:
            r, span = p.row - rows_of.start, slice(p.offset, p.offset + p.stop - p.start)
            piece = zs[p.item][:, p.start : p.stop]
            if isinstance(piece, np.ndarray):
                piece = torch.from_numpy(np.ascontiguousarray(piece, dtype=np.float32))
            x[r, :, span] = piece.to(b.torch_device, non_blocking=True)
            mask[r, 0, span] = 1.0
        decode_rows(b, x, b.upload(mask), placed, rows_of.start, pending)
    return pending


def decode_rows(
    b: TorchBackend,
    z: torch.Tensor,
    mask: torch.Tensor,
    placed: list[Piece],
    first_row: int,
    pending: PendingAudio,
) -> None:
    """Packed rows of latents through the decoder; each piece's kept samples to ``pending``."""
    hop = b.arch.hop
    real = sum(p.keep_stop - p.keep_start for p in placed)
    b.count("vocoder", real, z.shape[0] * z.shape[-1])
    (audio,) = b.run("dec_rows", z, mask)
    pending.add(
        HostCopy(audio.reshape(audio.shape[0], -1), b.cuda),
        [
            Placed(
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
