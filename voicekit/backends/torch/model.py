"""The whole Piper VITS inference network, in pieces the backend can batch and capture.

Submodule names follow Piper's (``enc_p``, ``dp``, ``flow``, ``dec``, ``emb_g``), so
the weights read from a voice's ONNX file load by name, and exporting this module
with torch's TorchScript ONNX exporter gives a graph shaped like Piper's own
(tests build small random voices that way).
"""

from __future__ import annotations

import torch
from torch import nn

from voicekit.backends.torch.decoder import Generator
from voicekit.backends.torch.duration import StochasticDurationPredictor
from voicekit.backends.torch.encoder import TextEncoder
from voicekit.backends.torch.flow import ResidualCouplingBlock
from voicekit.backends.torch.layers import sequence_mask
from voicekit.backends.torch.weights import Architecture, VoiceWeights
from voicekit.errors import VoiceError


def expand(
    w_ceil: torch.Tensor,
    m_p: torch.Tensor,
    logs_p: torch.Tensor,
    frames: int | torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repeat each phoneme's prior stats over its frames: [b, c, t] -> [b, c, frames].

    Frame f belongs to the phoneme whose cumulative end is the first above f, i.e.
    the count of ends at or below f. Gathering copies values exactly, as VITS's
    0/1 path matmul does; frames past the total get zeros, as there.
    """
    ends = torch.cumsum(w_ceil, -1)  # [b, 1, t]
    pos = torch.arange(frames, device=w_ceil.device, dtype=w_ceil.dtype)  # type: ignore[arg-type]
    if torch.onnx.is_in_onnx_export():  # no searchsorted in ONNX opset 15
        index = (ends.transpose(1, 2) <= pos.view(1, 1, -1)).sum(1, keepdim=True)
    else:
        index = torch.searchsorted(
            ends.contiguous(), pos.expand(ends.shape[0], 1, -1).contiguous(), right=True
        )
    covered = (pos.view(1, 1, -1) < ends[:, :, -1:]).to(m_p.dtype)
    index = index.clamp(max=m_p.shape[-1] - 1)
    index = index.expand(-1, m_p.shape[1], -1)
    m = torch.gather(m_p, 2, index) * covered
    logs = torch.gather(logs_p, 2, index) * covered
    return m, logs


class Vits(nn.Module):
    def __init__(self, arch: Architecture) -> None:
        super().__init__()
        self.arch = arch
        self.enc_p = TextEncoder(arch)
        self.dp = StochasticDurationPredictor(arch)
        self.flow = ResidualCouplingBlock(arch)
        self.dec = Generator(arch)
        if arch.n_speakers > 1:
            self.emb_g = nn.Embedding(arch.n_speakers, arch.gin)

    def speaker(self, sid: torch.Tensor | None) -> torch.Tensor | None:
        """Speaker embedding [b, gin, 1], or None for a single-speaker voice."""
        if self.arch.n_speakers <= 1 or sid is None:
            return None
        return self.emb_g(sid).unsqueeze(-1)

    def durations(
        self,
        ids: torch.Tensor,
        lengths: torch.Tensor,
        dp_noise: torch.Tensor | None,
        noise_w: torch.Tensor | float,
        length_scale: torch.Tensor | float,
        g: torch.Tensor | None = None,
        segments: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Text -> (whole frames per phoneme [b, 1, t], prior mean, prior log-scale).

        ``segments`` [b, t] packs several sentences a row (see TextEncoder); the
        predictor's convolutions all see masked input, so a gap of ``duration_reach``
        zeros between sentences keeps them apart there.
        """
        x, m_p, logs_p, x_mask = self.enc_p(ids, lengths, segments)
        logw = self.dp(x, x_mask, dp_noise, noise_w, g=g)
        w = torch.exp(logw) * x_mask * length_scale
        return torch.ceil(w), m_p, logs_p

    def latents(
        self,
        m: torch.Tensor,
        logs: torch.Tensor,
        noise: torch.Tensor,
        noise_scale: torch.Tensor | float,
        frame_lengths: torch.Tensor | None,
        g: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Prior sample through the flow: the decoder's input [b, inter, frames], masked.

        The mask comes from ``frame_lengths``, or is given ([b, 1, frames]) for rows
        that pack several utterances: every flow convolution sees masked input, so a
        gap of zeros wider than one convolution's reach keeps the utterances apart.
        """
        y_mask = mask if mask is not None else sequence_mask(frame_lengths, m.shape[-1])
        z_p = m + noise * torch.exp(logs) * noise_scale
        z = self.flow(z_p, y_mask, g=g)
        return z * y_mask

    def forward(
        self,
        input: torch.Tensor,
        input_lengths: torch.Tensor,
        scales: torch.Tensor,
        sid: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Piper's exported signature: ids, lengths, (noise, length, noise_w) -> audio.

        Draws its own noise (``randn_like``), which the ONNX export turns into the two
        RandomNormalLike nodes every Piper voice has.
        """
        g = self.speaker(sid)
        w_ceil, m_p, logs_p = self.durations(input, input_lengths, None, scales[2], scales[1], g)
        frame_lengths = torch.clamp_min(torch.sum(w_ceil, [1, 2]), 1).long()
        frames = frame_lengths.max()
        y_mask = sequence_mask(frame_lengths, frames)
        m, logs = expand(w_ceil, m_p, logs_p, frames)
        # No-op on the values; makes the frame mask an input of the prior, as in
        # Piper's graph, so the ONNX split finds it on the encoder side of the cut.
        # The rest repeats latents() by hand: calling it would compute a second mask
        # inside the flow, and the split would no longer find the decoder's input mask.
        m, logs = m * y_mask, logs * y_mask
        z_p = m + torch.randn_like(m) * torch.exp(logs) * scales[0]
        z = self.flow(z_p, y_mask, g=g)
        audio = self.dec(z * y_mask, g=g)
        return audio.unsqueeze(1)


def build_model(weights: VoiceWeights) -> Vits:
    """A Vits module holding the voice's weights (CPU, float32, eval mode)."""
    model = Vits(weights.arch)
    state = model.state_dict()
    missing = sorted(set(state) - set(weights.tensors))
    if missing:
        raise VoiceError(
            f"the voice graph lacks {len(missing)} weights the network needs "
            f"(first: {missing[0]}); the torch backend cannot run it (use --backend ort)"
        )
    loaded = {}
    for name, target in state.items():
        value = torch.from_numpy(weights.tensors[name].copy())
        if tuple(value.shape) != tuple(target.shape):
            raise VoiceError(
                f"weight {name} has shape {tuple(value.shape)}, expected {tuple(target.shape)}"
            )
        loaded[name] = value
    model.load_state_dict(loaded)
    return model.eval().requires_grad_(False)
