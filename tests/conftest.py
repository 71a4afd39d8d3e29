"""Shared fixtures: every test gets its own config home and a shared split-voice cache."""

from __future__ import annotations

import importlib.util
import signal
from pathlib import Path

import pytest

from voicekit.settings import SynthSettings

# A shell starts a background job (`cmd &` without job control) with Ctrl-C ignored,
# and every process started from it inherits that: the tests that press Ctrl-C on a
# `voicekit` they start would then see it run to the end. They test voicekit, not the
# shell, so this session takes Ctrl-C the usual way, and its children with it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # One cache for the session: splitting the bundled voice takes a second or two.
    return tmp_path_factory.mktemp("voicekit-cache")


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, cache_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Config home per test; the cache is shared but never the user's own."""
    monkeypatch.setenv("VOICEKIT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("VOICEKIT_CACHE", str(cache_root))
    monkeypatch.delenv("VOICEKIT_DEBUG", raising=False)


@pytest.fixture(scope="session")
def bundled_voice():  # type: ignore[no-untyped-def]
    from voicekit.backends.voices import load_voice

    return load_voice()


@pytest.fixture
def cpu_settings() -> SynthSettings:
    """CPU, onnxruntime, short pauses: what most end-to-end tests run."""
    return SynthSettings(device="cpu", backend="ort", sentence_silence=0.1,
                         paragraph_silence=0.2, chapter_silence=0.3)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda = False
    if importlib.util.find_spec("torch") is not None:
        import torch

        cuda = torch.cuda.is_available()
    skip = pytest.mark.skip(reason="needs CUDA (torch.cuda.is_available() is false)")
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(skip)
