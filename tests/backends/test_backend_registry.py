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
    with pytest.raises(InputError, match="choose from openvino, ort, torch"):
        create_backend("tensorrt", bundled_voice, SynthSettings(), "cpu")
    assert backend_names() == ["openvino", "ort", "torch"]


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


def test_openvino_backend_without_openvino_gives_the_install_hint(
    bundled_voice: Voice, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # as where it is not installed
    monkeypatch.delitem(sys.modules, "voicekit.backends.openvino", raising=False)
    settings = SynthSettings(device="cpu", backend="openvino")
    with pytest.raises(DependencyError) as info:
        create_backend("openvino", bundled_voice, settings, "cpu")
    assert info.value.exit_code == 6
    assert "missing (openvino)" in info.value.message
    assert info.value.hint == "pip install 'voicekit[openvino]'"


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


def test_a_job_never_mixes_backends(bundled_voice: Voice) -> None:
    # The backend is in the audio fingerprint, so a run on another backend (an auto
    # choice that changed, say) names every bucket differently: it reuses none of the
    # first run's segments rather than splice two runtimes' audio into one book.
    from voicekit.synth.pipeline import Synthesizer
    from voicekit.system.devices import DeviceChoice
    from voicekit.text.model import Book, BookMeta, Chapter

    book = Book(BookMeta(title="T"), [Chapter(1, "One", ["A first sentence.", "Another."])])
    settings = SynthSettings(device="cpu")
    hashes = {
        name: {
            b.hash
            for b in Synthesizer(settings, choice=DeviceChoice("cpu", name), voice=bundled_voice)
            .plan(book)
            .buckets
        }
        for name in ("ort", "openvino")
    }
    assert hashes["ort"] and hashes["openvino"]
    assert not hashes["ort"] & hashes["openvino"]
