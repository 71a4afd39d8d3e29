"""The torch backend's two stages as the pipeline and bench call them.

``TorchAcoustic`` (ids -> latents) runs one sentence at a time, or in groups padded
to ``shape_for`` shapes; ``TorchVocoder`` (latents -> audio) runs windows batched by
similar length, or, under the packed policy, latents laid end to end in rows
(``packed.vocode``). ``TorchBackend.synthesize`` of a packed call bypasses both.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from voicekit.backends.base import Noise, Utterance, chunk_spans
from voicekit.backends.torch import packed
from voicekit.backends.torch.model import expand
from voicekit.backends.torch.transfer import HostCopy, PendingAudio, Placed

if TYPE_CHECKING:
    from voicekit.backends.torch.backend import TorchBackend


def as_latent(latent: Any) -> torch.Tensor | np.ndarray:
    """A latent as [channels, frames]: torch tensor, numpy array, or an object with ``.z``."""
    z = getattr(latent, "z", latent)
    if isinstance(z, np.ndarray) and z.ndim == 3:
        z = z[0]
    return z  # type: ignore[no-any-return]


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
        zs = [as_latent(lat) for lat in latents]
        with self._b.on_stream("vocoder", inputs=[z for z in zs if isinstance(z, torch.Tensor)]):
            if self._b.packing:
                return packed.vocode(self._b, zs, self.hop)
            return self._submit(zs)

    def _submit(self, zs: list[torch.Tensor | np.ndarray]) -> PendingAudio:
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
            x = torch.zeros(
                n_batch, b.arch.inter, n_frames, device=b.torch_device, dtype=b.dec_dtype
            )
            lengths = torch.ones(n_batch, dtype=torch.int64)
            placed = []
            for r, (i, span) in enumerate(rows):
                n = span.stop - span.start
                piece = zs[i][:, span.start : span.stop]
                if isinstance(piece, np.ndarray):
                    piece = b.upload(np.ascontiguousarray(piece, dtype=np.float32))
                x[r, :, :n] = piece.to(b.torch_device, non_blocking=True)
                lengths[r] = n
                keep = slice(
                    (span.keep_start - span.start) * hop, (span.keep_stop - span.start) * hop
                )
                placed.append(
                    Placed(i, r, keep, slice(span.keep_start * hop, span.keep_stop * hop))
                )
            if all(int(n) == n_frames for n in lengths[: len(rows)]):
                # No real row is padded in time (full chunk windows, or one item alone):
                # skip the masks. Padding rows only compute junk of their own.
                (audio,) = b.run("dec", x, None)
            else:
                (audio,) = b.run("dec", x, b.upload(lengths.numpy()))
            pending.add(HostCopy(audio[: len(rows)].reshape(len(rows), -1), b.cuda), placed)
            del x, audio
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
        totals = HostCopy(w_ceil.sum(dim=(1, 2)), b.cuda).wait()  # one read per group
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
