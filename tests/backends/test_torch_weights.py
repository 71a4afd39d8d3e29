"""Reading the bundled voice's ONNX graph into weights, an architecture and a torch model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from voicekit.backends.torch.decoder import receptive_field  # noqa: E402
from voicekit.backends.torch.model import build_model  # noqa: E402
from voicekit.backends.torch.weights import (  # noqa: E402
    VoiceWeights,
    load_weights,
    module_path,
)
from voicekit.backends.voices import Voice  # noqa: E402
from voicekit.errors import VoiceError  # noqa: E402


@pytest.fixture(scope="module")
def weights(bundled_voice: Voice) -> VoiceWeights:
    return load_weights(bundled_voice.model_path, bundled_voice.config)


@pytest.fixture(scope="module")
def initializers(bundled_voice: Voice) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    model = onnx.load(str(bundled_voice.model_path))
    return {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}


def test_module_path_from_node_name() -> None:
    assert module_path("/flow/flows.6/enc/in_layers.0/Conv") == "flow.flows.6.enc.in_layers.0"
    assert module_path("/dec/conv_pre/Conv") == "dec.conv_pre"
    assert module_path("Conv_123") is None
    assert module_path("/Conv") is None


def test_bundled_architecture_comes_from_the_graph(
    weights: VoiceWeights, bundled_voice: Voice
) -> None:
    a = weights.arch
    assert (a.n_vocab, a.hidden, a.inter, a.filter) == (256, 192, 192, 768)
    assert (a.heads, a.window, a.layers, a.ffn_kernel) == (2, 4, 6, 3)
    assert a.dp_flows == (3, 5, 7) and a.dp_all_flows == 4 and a.dp_bins == 10
    assert a.tail_bound == pytest.approx(5.0)
    assert a.flows == (0, 2, 4, 6) and (a.flow_layers, a.flow_kernel) == (4, 5)
    assert a.upsample_rates == (8, 8, 4) and a.upsample_kernels == (16, 16, 8)
    assert a.upsample_channels == (128, 64, 32)
    assert a.resblock == "2" and a.resblock_kernels == (3, 5, 7) and a.resblock_convs == 2
    assert not a.post_bias
    assert (a.n_speakers, a.gin) == (1, 0)
    assert a.hop == bundled_voice.hop_length == 256


def test_conv_settings_and_slopes_come_from_node_attributes(weights: VoiceWeights) -> None:
    convs = weights.arch.convs
    # Dilations of this voice are not HiFi-GAN's (1, 3): they must be read, not assumed.
    assert [convs[f"dec.resblocks.{j}.convs.1"].dilation for j in range(3)] == [2, 6, 12]
    assert convs["dec.resblocks.2.convs.1"].pads == (36, 36)
    assert convs["dec.ups.2"].stride == 4 and convs["dec.ups.2"].pads == (2, 2)
    assert convs["dec.ups.0"].slope == pytest.approx(0.1)
    assert convs["dec.conv_post"].slope == pytest.approx(0.01)  # the last LeakyRelu differs
    assert convs["dec.conv_pre"].slope is None
    assert convs["dp.convs.convs_sep.2"].dilation == 9
    assert convs["dp.convs.convs_sep.2"].groups == 192


def test_anonymous_and_oddly_named_weights_are_named_by_their_consumer(
    weights: VoiceWeights, initializers: dict[str, np.ndarray]
) -> None:
    t = weights.tensors
    # Weight norm folded at export: the initializer is anonymous, its Conv node names it.
    np.testing.assert_array_equal(
        t["flow.flows.6.enc.in_layers.0.weight"], initializers["onnx::Conv_8168"]
    )
    # The phoneme embedding is stored as "sid" in this voice.
    np.testing.assert_array_equal(t["enc_p.emb.weight"], initializers["sid"])
    # exp(-logs) of the duration predictor's affine flow, folded into a constant.
    np.testing.assert_array_equal(t["dp.flows.0.scale"], initializers["/dp/flows.0/Exp_output_0"])
    assert not any(k.startswith("dp.flows.1.") for k in t)  # unused in reverse, not exported
    assert not any(k.startswith("/") for k in t)


def test_build_model_uses_every_weight_of_the_voice(weights: VoiceWeights) -> None:
    state = build_model(weights).state_dict()
    # Both ways: a weight of the voice that no module takes means a layer our network lacks.
    assert set(state) == set(weights.tensors)
    for name, value in state.items():
        np.testing.assert_array_equal(value.numpy(), weights.tensors[name], err_msg=name)


def test_build_model_rejects_a_missing_weight(weights: VoiceWeights) -> None:
    broken = VoiceWeights(weights.arch, dict(weights.tensors))
    del broken.tensors["dec.ups.1.weight"]
    with pytest.raises(VoiceError, match="lacks"):
        build_model(broken)


def test_receptive_field_is_covered_by_the_default_overlap(weights: VoiceWeights) -> None:
    from voicekit.settings import SynthSettings

    left, right = receptive_field(weights.arch)
    assert (left, right) == (11, 11)
    assert SynthSettings().overlap_frames >= max(left, right)


def test_receptive_field_matches_a_perturbation(weights: VoiceWeights) -> None:
    """Changing one latent frame changes the audio exactly within the computed field."""
    # float64, so the field's faint edge is not lost to rounding.
    dec = build_model(weights).dec.double()
    hop, frames, at = weights.arch.hop, 64, 32
    left, right = receptive_field(weights.arch)
    z = torch.randn(
        1,
        weights.arch.inter,
        frames,
        generator=torch.Generator().manual_seed(0),
        dtype=torch.float64,
    )
    bumped = z.clone()
    bumped[:, :, at] += 1.0
    with torch.inference_mode():
        # Same kernels on the same inputs outside the field: exactly equal there.
        changed = (dec(bumped) - dec(z)).reshape(-1) != 0
    where = torch.nonzero(changed).reshape(-1)
    first_frame, last_frame = int(where.min()) // hop, int(where.max()) // hop
    assert first_frame >= at - left and last_frame <= at + right
    # ... and the field is tight: the outermost frames it names do change.
    assert first_frame == at - left and last_frame == at + right
