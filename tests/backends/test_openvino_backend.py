"""The OpenVINO backend against onnxruntime on real sentences of the bundled voice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("openvino")

from tests.backends.audio import snr_db, utterances
from voicekit.backends.base import Utterance, create_backend
from voicekit.backends.openvino import OpenVinoBackend
from voicekit.backends.ort import OrtBackend
from voicekit.backends.voices import Voice
from voicekit.errors import DeviceError
from voicekit.settings import SynthSettings

# A short sentence, ordinary ones, and one long enough for several vocoder chunks
# (the default 256 frames), so chunk joins are compared too.
SENTENCES = [
    "Oh dear!",
    "The harbour was quiet that morning.",
    "Alice was beginning to get very tired of sitting by her sister on the bank, and of "
    "having nothing to do: once or twice she had peeped into the book her sister was "
    "reading, but it had no pictures or conversations in it.",
    "There was nothing so very remarkable in that.",
]
# Threads fixed so contention from other work on the machine does not stall either runtime.
CPU = SynthSettings(device="cpu", threads=1)


@pytest.fixture(scope="module")
def utts(bundled_voice: Voice) -> list[Utterance]:
    return utterances(bundled_voice, SENTENCES, 1234, 5)


def assert_within_60_db(got: list[np.ndarray], ref: list[np.ndarray]) -> None:
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        assert g.dtype == np.float32
        assert snr_db(g.reshape(-1), r.reshape(-1)) >= 60


@pytest.fixture(scope="module")
def both(bundled_voice: Voice, env_cache: Path) -> Iterator[tuple[OrtBackend, OpenVinoBackend]]:
    ort = create_backend("ort", bundled_voice, CPU.replace(backend="ort"), "cpu")
    ov = create_backend("openvino", bundled_voice, CPU.replace(backend="openvino"), "cpu")
    assert isinstance(ort, OrtBackend) and isinstance(ov, OpenVinoBackend)
    yield ort, ov
    ort.close()
    ov.close()


def test_registry_builds_it_for_the_cpu(both: tuple[OrtBackend, OpenVinoBackend]) -> None:
    _, ov = both
    assert ov.name == "openvino" and ov.device == "cpu"
    assert ov.batch_sentences == 1
    assert ov.vocoder.hop == 256 and ov.acoustic.channels == 192


def test_audio_matches_onnxruntime_within_60_db(
    both: tuple[OrtBackend, OpenVinoBackend], utts: list[Utterance]
) -> None:
    ort, ov = both
    ref = ort.synthesize(utts)
    got = ov.synthesize(utts)
    assert max(a.size for a in ref) > 3 * 256 * 256  # the long one took several chunks
    assert_within_60_db(got, ref)


def test_each_stage_matches_onnxruntime(
    both: tuple[OrtBackend, OpenVinoBackend], utts: list[Utterance]
) -> None:
    ort, ov = both
    ref = ort.acoustic(utts)
    got = ov.acoustic(utts)
    # same durations (so the same audio length), and the same latents within rounding
    assert [g.frames for g in got] == [r.frames for r in ref]
    assert_within_60_db([g.z for g in got], [r.z for r in ref])
    # the vocoder alone, on onnxruntime's latents
    assert_within_60_db(ov.vocoder(ref), ort.vocoder(ref))


def test_it_refuses_a_gpu(bundled_voice: Voice, env_cache: Path) -> None:
    with pytest.raises(DeviceError, match="runs on the CPU only, not cuda:0"):
        create_backend("openvino", bundled_voice, CPU.replace(backend="openvino"), "cuda:0")
