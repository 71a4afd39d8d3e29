"""Voices of other shapes: small random Piper-like VITS models, exported like Piper exports.

Each model is built from our torch modules with random weights and a shape unlike
the bundled voice (hidden size, heads, window, flows, upsampling, ResBlock type,
speakers), exported with torch's TorchScript ONNX exporter (two RandomNormalLike
noise nodes, module-scoped node names, weight norm folded into anonymous
initializers), then loaded back by voicekit's ONNX split (ort) and by the torch
loader, which must agree with each other and with the architecture we built.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from tests.backends.architectures import standard_architecture  # noqa: E402
from voicekit.backends.base import Utterance  # noqa: E402
from voicekit.backends.ort import OrtBackend  # noqa: E402
from voicekit.backends.torch.backend import TorchBackend  # noqa: E402
from voicekit.backends.torch.decoder import receptive_field  # noqa: E402
from voicekit.backends.torch.model import Vits  # noqa: E402
from voicekit.backends.torch.weights import Architecture, load_weights  # noqa: E402
from voicekit.backends.voice_graph import split_voice  # noqa: E402
from voicekit.backends.voices import Voice, load_voice  # noqa: E402
from voicekit.settings import SynthSettings  # noqa: E402

SHAPES: dict[str, dict[str, object]] = {
    # Multi-speaker, ResBlock1 with three dilations, two upsamples (hop 16), dilated WN.
    "multi-resblock1": dict(
        n_vocab=40, hidden=64, inter=32, filter_channels=128, heads=2, layers=2, window=2,
        dp_flows=3, dp_bins=6, n_flows=2, flow_layers=3, flow_kernel=3, flow_dilation=2,
        resblock="1", resblock_kernels=(3, 5), resblock_dilations=((1, 3, 5), (1, 2, 4)),
        upsample_rates=(4, 4), upsample_kernels=(8, 8), dec_initial=64,
        n_speakers=3, gin=16, slope=0.2, final_slope=0.05,
    ),
    # Single speaker, ResBlock2, three heads, hop 32, odd window.
    "single-resblock2": dict(
        n_vocab=30, hidden=48, inter=16, filter_channels=96, heads=3, layers=3, window=3,
        dp_flows=2, dp_bins=8, n_flows=3, flow_layers=2, flow_kernel=5,
        resblock="2", resblock_kernels=(3, 7), resblock_dilations=((1, 3), (2, 4)),
        upsample_rates=(8, 4), upsample_kernels=(16, 8), dec_initial=32,
    ),
}  # fmt: skip
SETTINGS = SynthSettings(device="cpu", threads=1, chunk_frames=0)


@dataclass
class TinyVoice:
    name: str
    arch: Architecture
    model: Vits
    voice: Voice


def build(arch: Architecture, seed: int) -> Vits:
    """Random weights that keep durations and audio in a sane range."""
    torch.manual_seed(seed)
    model = Vits(arch)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("emb_rel_k", "emb_rel_v")):
                p.normal_(0, 0.2)
            elif name.endswith("gamma"):
                p.uniform_(0.8, 1.2)
            elif name.endswith("beta"):
                p.normal_(0, 0.1)
        # logw ~ noise + 1.5: a handful of frames per phoneme.
        model.dp.flows[0].m.copy_(torch.tensor([[-1.5], [0.3]]))
        model.dp.flows[0].scale.copy_(torch.tensor([[0.9], [1.1]]))
    # Weight norm, as Piper trains the flow: the export folds it into anonymous constants.
    for i in arch.flows:
        for layer in model.flow.flows[i].enc.in_layers:
            torch.nn.utils.parametrizations.weight_norm(layer)
    return model.eval()


def export(model: Vits, arch: Architecture, folder: Path) -> Path:
    path = folder / "tiny.onnx"
    ids = torch.randint(1, arch.n_vocab, (1, 20))
    args: tuple[torch.Tensor, ...] = (ids, torch.tensor([20]), torch.tensor([0.667, 1.0, 0.8]))
    if arch.n_speakers > 1:
        args = (*args, torch.tensor([0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            args,
            str(path),
            dynamo=False,
            opset_version=15,
            # As Piper does: a fourth name with no fourth input renames the first weight.
            input_names=["input", "input_lengths", "scales", "sid"],
            output_names=["output"],
            dynamic_axes={
                "input": {0: "batch_size", 1: "phonemes"},
                "input_lengths": {0: "batch_size"},
                "output": {0: "batch_size", 2: "time"},
            },
        )
    config = {
        "audio": {"sample_rate": 16000},
        "phoneme_type": "text",
        "phoneme_id_map": {"_": [0], "^": [1], "$": [2]},
        "num_speakers": arch.n_speakers,
        "hop_length": arch.hop,
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
    }
    path.with_name("tiny.onnx.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module", params=sorted(SHAPES))
def tiny(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> TinyVoice:
    arch = standard_architecture(**SHAPES[request.param])  # type: ignore[arg-type]
    model = build(arch, seed=len(request.param))
    path = export(model, arch, tmp_path_factory.mktemp(request.param))
    return TinyVoice(request.param, arch, model, load_voice(path))


@pytest.fixture(scope="module")
def backends(tiny: TinyVoice, cache_root: Path) -> Iterator[tuple[OrtBackend, TorchBackend]]:
    settings = SETTINGS.replace(speaker=2 if tiny.arch.n_speakers > 1 else None)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEKIT_CACHE", str(cache_root))
        ort_backend = OrtBackend(tiny.voice, settings.replace(backend="ort"), "cpu")
    yield ort_backend, TorchBackend(tiny.voice, settings, "cpu")
    ort_backend.close()


def utterances(arch: Architecture) -> list[Utterance]:
    rng = np.random.default_rng(11)
    return [
        Utterance(rng.integers(1, arch.n_vocab, n).astype(np.int64), (5, 6, i))
        for i, n in enumerate((9, 40, 4, 71))
    ]


def test_export_looks_like_a_piper_voice(tiny: TinyVoice) -> None:
    graph = onnx.load(str(tiny.voice.model_path)).graph
    noise = sorted(n.name for n in graph.node if n.op_type == "RandomNormalLike")
    assert noise == ["/RandomNormalLike", "/dp/RandomNormalLike"]
    conv = next(n for n in graph.node if n.name == "/flow/flows.0/enc/in_layers.0/Conv")
    assert conv.input[1].startswith("onnx::")  # folded weight norm: named only by its node
    if tiny.arch.n_speakers == 1:
        assert "sid" in {i.name for i in graph.initializer}  # Piper's misnamed embedding


def test_architecture_read_back_equals_the_one_built(tiny: TinyVoice) -> None:
    read = load_weights(tiny.voice.model_path, tiny.voice.config).arch
    for f in fields(Architecture):
        if f.name != "convs":
            assert getattr(read, f.name) == getattr(tiny.arch, f.name), f.name
    for path, built in tiny.arch.convs.items():
        got = read.convs[path]
        assert (got.kernel, got.stride, got.dilation, got.pads, got.groups, got.transposed) == (
            built.kernel, built.stride, built.dilation, built.pads, built.groups, built.transposed
        ), path  # fmt: skip
        assert got.slope == pytest.approx(built.slope), path
    assert receptive_field(read) == receptive_field(tiny.arch)


def test_weights_read_back_equal_the_model_weights(tiny: TinyVoice) -> None:
    tensors = load_weights(tiny.voice.model_path, tiny.voice.config).tensors
    checked = 0
    for name, value in tensors.items():
        module_name, _, attr = name.rpartition(".")
        # Through a parametrization, .weight is the folded (effective) weight.
        expected = getattr(tiny.model.get_submodule(module_name), attr).detach().numpy()
        np.testing.assert_allclose(value, expected, rtol=1e-5, atol=1e-6, err_msg=name)
        checked += 1
    assert checked >= 50


def test_ort_split_and_torch_agree(
    tiny: TinyVoice, backends: tuple[OrtBackend, TorchBackend]
) -> None:
    ort_backend, torch_backend = backends
    utts = utterances(tiny.arch)
    for ref, out in zip(ort_backend.synthesize(utts), torch_backend.synthesize(utts), strict=True):
        assert len(out) == len(ref) and len(ref) % tiny.arch.hop == 0
        noise = float(np.sum((out.astype(np.float64) - ref) ** 2))
        assert noise == 0 or 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise) >= 40
    # Vocoder alone on the same latents (one at a time: Piper exports sid with batch 1).
    latents = [ort_backend.acoustic([u])[0] for u in utts]
    for ref, out in zip(ort_backend.vocoder(latents), torch_backend.vocoder(latents), strict=True):
        assert float(np.max(np.abs(out - ref))) <= 1e-4


def test_split_finds_the_cut_of_an_exported_voice(tiny: TinyVoice, cache_root: Path) -> None:
    split = split_voice(tiny.voice.model_path, tiny.voice.sha256, cache_root)
    assert split.meta["channels"] == tiny.arch.inter
    assert ("sid" in split.meta["encoder_inputs"]) == (tiny.arch.n_speakers > 1)


def test_batched_and_padded_equals_one_by_one(
    tiny: TinyVoice, backends: tuple[OrtBackend, TorchBackend]
) -> None:
    _, single = backends
    utts = utterances(tiny.arch)
    settings = SETTINGS.replace(
        speaker=2 if tiny.arch.n_speakers > 1 else None,
        batch_size=4,
        chunk_frames=16,
        overlap_frames=16,
    )
    batched = TorchBackend(tiny.voice, settings, "cpu", pad_shapes=True)
    for a, b in zip(batched.synthesize(utts), single.synthesize(utts), strict=True):
        assert len(a) == len(b)
        assert float(np.max(np.abs(a - b))) < 1e-5


def test_multi_speaker_voice_on_ort_takes_a_batch_size(
    tiny: TinyVoice, backends: tuple[OrtBackend, TorchBackend], cache_root: Path
) -> None:
    # Regression: Piper exports the speaker input with a fixed batch of one, so a
    # batched ort call on a multi-speaker voice failed inside onnxruntime. Whatever
    # the backend does about it, a batch size must run and give each sentence's audio
    # as the torch backend (which batches it) makes it.
    if tiny.arch.n_speakers == 1:
        pytest.skip("single-speaker voice")
    _, torch_one = backends
    settings = SETTINGS.replace(speaker=2, batch_size=4, backend="ort")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEKIT_CACHE", str(cache_root))
        batched = OrtBackend(tiny.voice, settings, "cpu")
    utts = utterances(tiny.arch)
    for out, ref in zip(batched.synthesize(utts), torch_one.synthesize(utts), strict=True):
        assert len(out) == len(ref)
        noise = float(np.sum((out.astype(np.float64) - ref) ** 2))
        assert noise == 0 or 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise) >= 40
