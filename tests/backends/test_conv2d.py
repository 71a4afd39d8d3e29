"""The vocoder in 2-D convolutions: the same audio to rounding, used on the CPU only."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from voicekit.backends.conv2d import as_conv2d
from voicekit.backends.ort import CPU_GRAPHS, OrtBackend, graphs_for, session_options
from voicekit.backends.voice_graph import split_voice
from voicekit.settings import SynthSettings
from voicekit.synth.plan import audio_fingerprint


def _session(path_or_model: object) -> ort.InferenceSession:
    source = path_or_model.SerializeToString() if hasattr(path_or_model, "SerializeToString") \
        else str(path_or_model)
    return ort.InferenceSession(source, session_options(1), providers=["CPUExecutionProvider"])


def _snr(reference: np.ndarray, other: np.ndarray) -> float:
    noise = float(((reference - other) ** 2).sum())
    return float("inf") if noise == 0 else 10 * np.log10(float((reference ** 2).sum()) / noise)


@pytest.fixture(scope="module")
def split(bundled_voice, cache_root):  # type: ignore[no-untyped-def]
    return split_voice(bundled_voice.model_path, bundled_voice.sha256, cache_root)


def test_the_bundled_vocoder_is_rewritten_and_sounds_the_same(split) -> None:  # type: ignore[no-untyped-def]
    assert split.meta["vocoder_2d"], split.meta["vocoder_2d_note"]
    name = split.meta["latents"]
    one_d, two_d = _session(split.vocoder), _session(split.vocoder_2d)
    rng = np.random.default_rng(3)
    for frames in (1, 37, 288):  # a lone frame, a short sentence, a default chunk
        z = rng.standard_normal((1, split.meta["channels"], frames)).astype(np.float32)
        (want,) = one_d.run(None, {name: z})
        (got,) = two_d.run(None, {name: z})
        assert got.size == want.size == frames * 256
        assert _snr(want.reshape(-1), got.reshape(-1)) >= 100


def test_a_split_missing_its_2d_vocoder_is_built_again(bundled_voice, tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = split_voice(bundled_voice.model_path, bundled_voice.sha256, tmp_path)
    assert first.vocoder_2d is not None
    first.vocoder_2d.unlink()  # the meta says it is there; the run would fail to load it
    again = split_voice(bundled_voice.model_path, bundled_voice.sha256, tmp_path)
    assert again.vocoder_2d is not None and again.vocoder_2d.is_file()


def test_the_cpu_takes_the_2d_vocoder_and_cuda_the_voices_own(bundled_voice, split) -> None:  # type: ignore[no-untyped-def]
    backend = OrtBackend(bundled_voice, SynthSettings(threads=1), "cpu")
    assert backend.vocoder_graph("cpu") == split.vocoder_2d
    assert backend.vocoder_graph("cuda:0") == split.vocoder


def _layout_changes(model_or_path: object, tmp_path) -> int:  # type: ignore[no-untyped-def]
    """How many tensors onnxruntime converts into or out of its blocked layout."""
    options = session_options(1)
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    _ = ort.InferenceSession(
        model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString")
        else str(model_or_path), options, providers=["CPUExecutionProvider"])  # fmt: skip
    ops = [n.op_type for n in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    return ops.count("ReorderInput") + ops.count("ReorderOutput")


def test_the_2d_vocoder_stays_in_the_blocked_layout(split, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The plain rewrite converted 34 tensors per call (a third of its time); kept
    blocked, only around the three transposed convolutions and at the two ends."""
    plain, _ = as_conv2d(onnx.load(str(split.vocoder)), blocked=False)
    before = _layout_changes(plain, tmp_path)
    if before == 0:
        pytest.skip("this CPU's onnxruntime has no blocked layout (no AVX2)")
    ups = sum(n.op_type == "ConvTranspose" for n in onnx.load(str(split.vocoder)).graph.node)
    after = _layout_changes(split.vocoder_2d, tmp_path)
    assert after <= 2 * ups + 4 < before


def test_time_axes_are_named_through_dilated_and_transposed_convolutions() -> None:
    from voicekit.backends.conv2d import _channels_and_times

    wide, _ = as_conv2d(_tiny_vocoder(), blocked=False)
    weights = {i.name: i for i in wide.graph.initializer}
    channels, times = _channels_and_times(wide.graph, weights)
    assert channels["c1"] == 3 and channels["c2"] == 1
    assert times["c1"] == times["d1"] == times["c2"] == "frames"  # "same" padding, dilation 2


def test_the_fingerprint_tells_the_cpu_graphs_apart() -> None:
    settings = SynthSettings()
    scales = (0.667, 1.0, 0.8)
    cpu = audio_fingerprint("v", "ort", settings, scales, None, graphs_for("ort", "cpu"))
    cuda = audio_fingerprint("v", "ort", settings, scales, None, graphs_for("ort", "cuda:0"))
    torch_cpu = audio_fingerprint("v", "torch", settings, scales, None, graphs_for("torch", "cpu"))
    assert graphs_for("ort", "cpu") == CPU_GRAPHS
    assert cpu != cuda
    # Without a rewrite the fingerprint is what it always was: those jobs still resume.
    assert cuda == audio_fingerprint("v", "ort", settings, scales, None)
    assert torch_cpu == audio_fingerprint("v", "torch", settings, scales, None)


def _tiny_vocoder(*, speaker: bool = False, op: str = "LeakyRelu", vector: bool = False):  # type: ignore[no-untyped-def]
    """conv (2 -> 3, k3) -> op -> conv (3 -> 1, k3, dilation 2) -> tanh -> Unsqueeze."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((3, 2, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.standard_normal((1, 3, 3)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis"),
        numpy_helper.from_array(np.full((3, 1) if vector else (), 2.0, np.float32), "two"),
    ]
    nodes = [
        helper.make_node("Conv", ["z", "w1", "b1"], ["c1"], pads=[1, 1], kernel_shape=[3]),
        helper.make_node(op, ["c1"], ["a1"]),
        helper.make_node("Div", ["a1", "two"], ["d1"]),
        helper.make_node("Conv", ["d1", "w2"], ["c2"], pads=[2, 2], dilations=[2]),
        helper.make_node("Tanh", ["c2"], ["t"]),
        helper.make_node("Unsqueeze", ["t", "axis"], ["out"]),
    ]
    inputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 2, "T"])]
    if speaker:
        inputs.append(helper.make_tensor_value_info("g", TensorProto.FLOAT, [1, 4, 1]))
    graph = helper.make_graph(nodes, "tiny", inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_small_vocoder_is_rewritten_exactly_enough() -> None:
    model = _tiny_vocoder()
    wide, why = as_conv2d(model)
    assert wide is not None, why
    onnx.checker.check_model(wide)
    z = np.random.default_rng(1).standard_normal((1, 2, 50)).astype(np.float32)
    (want,) = _session(model).run(None, {"z": z})
    (got,) = _session(wide).run(None, {"z": z})
    np.testing.assert_allclose(got.reshape(-1), want.reshape(-1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"speaker": True}, "2 inputs"),
        ({"op": "Softplus"}, "operation Softplus"),
        ({"vector": True}, "not a scalar"),
    ],
)
def test_graphs_it_does_not_understand_are_left_alone(kwargs, reason) -> None:  # type: ignore[no-untyped-def]
    wide, why = as_conv2d(_tiny_vocoder(**kwargs))
    assert wide is None
    assert reason in why


def test_cpu_sessions_share_one_arena_and_cuda_sessions_do_not(bundled_voice, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Three arenas kept three peaks: one shared arena took a worker from 265 to
    232 MB (docs/BENCHMARKS.md, section 14.2)."""
    backend = OrtBackend(bundled_voice, SynthSettings(threads=1), "cpu")
    stages = [stage.session for stage in backend.vocoder._staged.stages]
    for session in (backend.acoustic._encoder, backend.acoustic._flow, *stages):
        options = session.get_session_options()
        assert options.get_session_config_entry("session.use_env_allocators") == "1"

    # On CUDA the option stays off (the shared arena is a CPU allocator): caught at the
    # point where the sessions would be made, without a GPU.
    made = []

    def fake_session(path, opts, providers):  # type: ignore[no-untyped-def]
        made.append(opts)
        raise RuntimeError("no CUDA here")

    monkeypatch.setattr(ort, "InferenceSession", fake_session)
    monkeypatch.setattr("voicekit.system.ortcuda.preload_cuda_libraries", lambda: None)
    with pytest.raises(Exception, match="no CUDA here"):
        backend.open_sessions(SynthSettings(threads=1), "cuda:0")
    assert made
    with pytest.raises(RuntimeError, match="does not have configuration"):
        made[0].get_session_config_entry("session.use_env_allocators")
