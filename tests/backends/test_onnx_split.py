"""The split graphs must reproduce the whole voice exactly."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from voicekit.backends.base import Noise, Utterance, create_backend
from voicekit.backends.ort import session_options
from voicekit.backends.voice_graph import split_voice
from voicekit.settings import SynthSettings
from voicekit.system.paths import cache_dir

TEXT = "It was the best of times, it was the worst of times. The river ran fast and cold."


@pytest.fixture(scope="module")
def sessions(bundled_voice, cache_root):  # type: ignore[no-untyped-def]
    split = split_voice(bundled_voice.model_path, bundled_voice.sha256, cache_root,
                        with_whole=True)
    opts = session_options(2)

    def load(path: object) -> ort.InferenceSession:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

    return split, {name: load(getattr(split, name))
                   for name in ("encoder", "flow", "vocoder", "deterministic")}


def run_split(split, s, ids: np.ndarray, scales: np.ndarray, noise: Noise):  # type: ignore[no-untyped-def]
    meta = split.meta
    values = {"input": ids[None], "input_lengths": np.array([ids.size]), "scales": scales,
              "noise_w": noise.duration(ids.size)[None]}
    cut = s["encoder"].run(meta["encoder_outputs"],
                           {k: values[k] for k in meta["encoder_inputs"]})
    values.update(zip(meta["encoder_outputs"], cut, strict=True))
    frames = int(values[meta["mask"]].sum())
    values["noise"] = noise.prior(meta["channels"], frames)[None]
    (z,) = s["flow"].run([meta["latents"]], {k: values[k] for k in meta["flow_inputs"]})
    (audio,) = s["vocoder"].run(None, {meta["latents"]: z})
    return audio, values["noise_w"], values["noise"]


def test_split_pieces_equal_whole_voice_bit_for_bit(sessions, bundled_voice) -> None:  # type: ignore[no-untyped-def]
    split, s = sessions
    scales = np.array([0.667, 1.0, 0.8], np.float32)
    for i, sentence in enumerate(TEXT.split(". ")):
        ids = np.array(bundled_voice.phoneme_ids(sentence), dtype=np.int64)
        audio, noise_w, noise = run_split(split, s, ids, scales, Noise((7, i)))
        (whole,) = s["deterministic"].run(None, {
            "input": ids[None], "input_lengths": np.array([ids.size]), "scales": scales,
            "noise_w": noise_w, "noise": noise})
        assert audio.shape == whole.shape
        assert np.array_equal(audio, whole)


def test_split_equals_the_original_file_without_noise(sessions, bundled_voice) -> None:  # type: ignore[no-untyped-def]
    # With both noise scales at zero the random nodes stop mattering, so the
    # untouched voice file is a reference too.
    split, s = sessions
    original = ort.InferenceSession(str(bundled_voice.model_path), session_options(2),
                                    providers=["CPUExecutionProvider"])
    scales = np.array([0.0, 1.0, 0.0], np.float32)
    ids = np.array(bundled_voice.phoneme_ids(TEXT), dtype=np.int64)
    (expected,) = original.run(None, {"input": ids[None], "input_lengths": np.array([ids.size]),
                                      "scales": scales})
    audio, _, _ = run_split(split, s, ids, scales, Noise((1,)))
    assert np.array_equal(audio, expected)


def test_split_metadata_names_the_cut(sessions) -> None:  # type: ignore[no-untyped-def]
    split, _ = sessions
    meta = split.meta
    assert meta["channels"] == 192
    assert {"noise_w"} <= set(meta["encoder_inputs"])
    assert "noise" in meta["flow_inputs"] and meta["mask"] in meta["encoder_outputs"]
    assert meta["vocoder_extra"] == []  # single-speaker voice: latents are all it needs


def test_split_is_cached_by_voice_hash(bundled_voice) -> None:  # type: ignore[no-untyped-def]
    first = split_voice(bundled_voice.model_path, bundled_voice.sha256, cache_dir())
    mtime = first.vocoder.stat().st_mtime_ns
    again = split_voice(bundled_voice.model_path, bundled_voice.sha256, cache_dir())
    assert again.folder == first.folder and again.vocoder.stat().st_mtime_ns == mtime
    assert bundled_voice.sha256[:32] in first.folder.name


def test_ort_backend_is_deterministic_and_seed_sensitive(bundled_voice) -> None:  # type: ignore[no-untyped-def]
    backend = create_backend("ort", bundled_voice, SynthSettings(device="cpu"), "cpu")
    ids = np.array(bundled_voice.phoneme_ids("Same words, same seed."), dtype=np.int64)
    a = backend.synthesize([Utterance(ids, (1, 2, 3))])[0]
    b = backend.synthesize([Utterance(ids, (1, 2, 3))])[0]
    c = backend.synthesize([Utterance(ids, (9, 2, 3))])[0]
    assert np.array_equal(a, b)
    assert not (a.shape == c.shape and np.array_equal(a, c))
    assert a.size % bundled_voice.hop_length == 0 and np.abs(a).max() <= 1.0


def test_chunked_vocoding_matches_whole(bundled_voice) -> None:  # type: ignore[no-untyped-def]
    ids = np.array(bundled_voice.phoneme_ids(TEXT), dtype=np.int64)
    whole = create_backend("ort", bundled_voice, SynthSettings(device="cpu"), "cpu")
    chunked = create_backend("ort", bundled_voice,
                             SynthSettings(device="cpu", chunk_frames=64, overlap_frames=16), "cpu")
    (latents,) = whole.acoustic([Utterance(ids, (4,))])
    assert latents.frames > 3 * 64  # several chunks
    a = whole.vocoder([latents])[0]
    b = chunked.vocoder([latents])[0]
    assert a.shape == b.shape
    # overlap >= the decoder's receptive field: equal up to float rounding
    assert np.abs(a - b).max() < 1e-4


def test_sessions_keep_no_memory_plan_per_shape() -> None:
    """Each sentence has its own shapes; a plan kept per shape grew a worker by 40 MB
    (docs/BENCHMARKS.md, section 14). The plan changes where tensors live, not what
    they hold, so turning it off leaves the bytes alone (the split tests above)."""
    assert session_options(1).enable_mem_pattern is False
