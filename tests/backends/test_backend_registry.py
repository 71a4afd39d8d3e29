"""The backend registry: names, and the install hint when a backend's package is missing."""

from __future__ import annotations

import importlib
import sys

import pytest

from tests.backends.no_torch import PACKAGE, block_torch
from voicekit.backends.base import backend_names, create_backend
from voicekit.backends.voices import Voice
from voicekit.errors import DependencyError, InputError
from voicekit.settings import SynthSettings


def test_unknown_backend_names_the_choices(bundled_voice: Voice) -> None:
    with pytest.raises(InputError, match="choose from ort, torch"):
        create_backend("tensorrt", bundled_voice, SynthSettings(), "cpu")
    assert backend_names() == ["ort", "torch"]


def test_torch_backend_without_torch_gives_the_install_hint(
    bundled_voice: Voice, monkeypatch: pytest.MonkeyPatch
) -> None:
    block_torch(monkeypatch)
    settings = SynthSettings(device="cpu", backend="torch")
    with pytest.raises(DependencyError) as info:
        create_backend("torch", bundled_voice, settings, "cpu")
    assert info.value.exit_code == 6
    assert "missing (torch)" in info.value.message
    assert info.value.hint is not None and "voicekit[torch]" in info.value.hint


def test_blocking_torch_leaves_the_modules_as_they_were(monkeypatch: pytest.MonkeyPatch) -> None:
    # The test above swaps modules out; later tests must find the originals again.
    shapes = importlib.import_module(f"{PACKAGE}.shapes")
    before = {n: m for n, m in sys.modules.items() if n == "torch" or n.startswith(PACKAGE)}
    with monkeypatch.context() as inner:
        block_torch(inner)
        assert sys.modules["torch"] is None
        assert importlib.import_module(f"{PACKAGE}.shapes") is not shapes  # imported afresh
    after = {n: m for n, m in sys.modules.items() if n == "torch" or n.startswith(PACKAGE)}
    assert all(after[n] is m for n, m in before.items())
    assert importlib.import_module(f"{PACKAGE}.shapes") is shapes
