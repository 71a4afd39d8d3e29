"""The 2-D vocoder in stages and tiles: the same bits as the whole graph, from its own reach."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from voicekit.backends import vocoder_stages
from voicekit.backends.ort import OrtBackend, OrtLatents, OrtVocoder, session_options
from voicekit.backends.vocoder_stages import Stage, StagedRun, cut, reach
from voicekit.settings import SynthSettings


def _session(source: object) -> ort.InferenceSession:
    data = source.SerializeToString() if hasattr(source, "SerializeToString") else str(source)
    return ort.InferenceSession(data, session_options(1), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def backend(bundled_voice):  # type: ignore[no-untyped-def]
    return OrtBackend(bundled_voice, SynthSettings(threads=1), "cpu")


def test_the_bundled_vocoder_runs_in_three_stages(backend) -> None:  # type: ignore[no-untyped-def]
    stages = backend.split.vocoder_stages
    assert [up for _, _, up in stages] == [8, 8, 4], backend.split.meta["vocoder_stages_note"]
    assert all(path.is_file() for path, _, _ in stages)
    assert backend.vocoder._staged is not None and backend.vocoder._session is None
    # the default chunk overlap covers what the stages reach: the kept audio is exact
    assert backend.vocoder._staged.frames_margin <= SynthSettings().overlap_frames
    assert backend.vocoder_stages("cuda:0") == []  # CUDA runs the voice's own graph


@pytest.mark.parametrize("chunk", [256, 0, 40])
def test_stages_give_the_whole_graphs_audio(backend, chunk: int) -> None:  # type: ignore[no-untyped-def]
    # bit for bit on the AVX2 CPU this was written on; a tile whose context fell short
    # would be off by far more than float rounding
    settings = SynthSettings(threads=1, chunk_frames=chunk)
    staged = OrtVocoder(backend.split, backend.vocoder._staged.stages, 256, settings)
    whole = OrtVocoder(backend.split, _session(backend.split.vocoder_2d), 256, settings)
    rng = np.random.default_rng(5)
    channels = backend.split.meta["channels"]
    # a lone frame, shorter than a tile, a few tiles, and several chunks of many tiles
    for frames in (1, 37, 300, 1100):
        z = rng.standard_normal((channels, frames)).astype(np.float32)
        lat = OrtLatents(z)
        got, want = staged([lat])[0], whole([lat])[0]
        assert got.shape == want.shape == (frames * 256,)
        assert float(np.abs(got - want).max()) <= 1e-6, frames


def test_each_stage_looks_no_further_than_its_reach(backend) -> None:  # type: ignore[no-untyped-def]
    # a change of one input sample changes output samples within `radius` of it, and
    # only those: the tiles' context is what the graph needs, found from the graph
    rng = np.random.default_rng(9)
    for path, radius, up in backend.split.vocoder_stages:
        session = _session(path)
        dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
        shape = [d.dim_value or 1 for d in dims]  # batch 1, the channels, (1,) time
        name = session.get_inputs()[0].name
        n, middle = 4 * radius + 40, 2 * radius + 20
        x = rng.standard_normal((*shape[:-1], n)).astype(np.float32)
        (base,) = session.run(None, {name: x})
        x[..., middle] += 1.0
        (moved,) = session.run(None, {name: x})
        changed = np.nonzero(np.abs(moved - base).reshape(-1, n * up).max(axis=0))[0]
        assert changed.size, path.name
        assert changed.min() >= (middle - radius) * up, (path.name, changed.min())
        assert changed.max() < (middle + radius + 1) * up, (path.name, changed.max())


def _graph(*nodes: object, weights: list[object], channels: int = 2) -> object:
    graph = helper.make_graph(
        list(nodes), "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels, "t"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, None])],
        initializer=weights,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _weight(name: str, shape: tuple[int, ...]) -> object:
    return numpy_helper.from_array(np.ones(shape, dtype=np.float32), name)


def test_reach_adds_up_convolutions_and_scales_through_upsamplings() -> None:
    model = _graph(
        helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3], pads=[1, 1]),
        helper.make_node("Conv", ["a", "w2"], ["b"], kernel_shape=[5], dilations=[3],
                         pads=[6, 6]),
        helper.make_node("LeakyRelu", ["b"], ["c"]),
        helper.make_node("ConvTranspose", ["c", "w3"], ["y"], kernel_shape=[8], strides=[4],
                         pads=[2, 2]),
        weights=[_weight("w1", (2, 2, 3)), _weight("w2", (2, 2, 5)), _weight("w3", (2, 2, 8))],
    )
    # 1 + 6 input samples of convolution, then 2 more through the upsampling, plus one spare
    assert reach(model) == (1 + 6 + 2 + 1, 4)


@pytest.mark.parametrize(
    ("nodes", "why"),
    [
        ([helper.make_node("ConvTranspose", ["x", "w"], ["y"], kernel_shape=[8], strides=[4])],
         "fewer than two upsamplings"),
        ([helper.make_node("ConvTranspose", ["x", "w"], ["a"], kernel_shape=[8], strides=[4]),
          helper.make_node("Reshape", ["a", "s"], ["b"]),
          helper.make_node("ConvTranspose", ["b", "w"], ["y"], kernel_shape=[8], strides=[4])],
         "Reshape"),
        ([helper.make_node("ConvTranspose", ["x", "w"], ["a"], kernel_shape=[8], strides=[4]),
          helper.make_node("Conv", ["a", "v"], ["b"], kernel_shape=[2], strides=[2], name="down"),
          helper.make_node("ConvTranspose", ["b", "w"], ["y"], kernel_shape=[8], strides=[4])],
         "strided convolutions: down"),
    ],
)  # fmt: skip
def test_a_graph_it_cannot_read_is_left_whole(nodes: list[object], why: str) -> None:
    weights = [_weight("w", (2, 2, 8)), _weight("v", (2, 2, 2)),
               numpy_helper.from_array(np.array([1, 2, -1], dtype=np.int64), "s")]  # fmt: skip
    stages, reason = cut(_graph(*nodes, weights=weights))
    assert stages == [] and why in reason


def test_every_tile_runs_with_the_lanes_run_options(backend, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # every stage's run goes through the lane's RunOptions, so Lanes.close stops it
    seen = []
    real = Stage.run

    def spy(self: Stage, x: np.ndarray, options: object) -> np.ndarray:
        seen.append(options)
        return real(self, x, options)

    monkeypatch.setattr(vocoder_stages.Stage, "run", spy)
    options = ort.RunOptions()
    run = StagedRun(backend.vocoder._staged.stages, tile=64)
    z = np.zeros((1, backend.split.meta["channels"], 50), dtype=np.float32)
    assert run(z, (0, 50), options).shape == (50 * 256,)
    assert len(seen) == 1 + 2 * 7 and all(o is options for o in seen)  # 400 samples: 7 tiles
    assert run(z, (3, 3), options).shape == (0,)  # nothing kept: nothing run
    assert len(seen) == 15
