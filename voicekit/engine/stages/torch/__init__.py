"""The torch backend: our own PyTorch VITS with the weights read from the voice's ONNX file.

Importing this package imports torch; the backend registry in ``stages.base``
imports it only when ``--backend torch`` is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voicekit.engine.settings import SynthSettings
    from voicekit.engine.stages.torch.backend import TorchBackend
    from voicekit.engine.voices import Voice


def create_backend(voice: Voice, settings: SynthSettings, device: str) -> TorchBackend:
    """Build the torch backend for ``voice`` on ``device`` (``cpu`` or ``cuda:N``)."""
    from voicekit.engine.stages.torch.backend import TorchBackend

    return TorchBackend(voice, settings, device)


__all__ = ["create_backend"]
