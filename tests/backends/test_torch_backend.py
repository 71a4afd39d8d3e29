"""The torch backend against onnxruntime on the bundled voice, and its batching features."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from voicekit.backends.base import Noise, Utterance, create_backend  # noqa: E402
from voicekit.backends.ort import OrtBackend  # noqa: E402
from voicekit.backends.torch.backend import TorchBackend  # noqa: E402
from voicekit.backends.torch.graphs import GraphCache  # noqa: E402
from voicekit.backends.torch.shapes import ID_WINDOW  # noqa: E402
from voicekit.backends.torch.weights import VoiceWeights, load_weights  # noqa: E402
from voicekit.backends.voice_graph import split_voice  # noqa: E402
from voicekit.backends.voices import Voice  # noqa: E402
from voicekit.settings import SynthSettings  # noqa: E402

SENTENCES = [
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
    "Oh dear!",
    "So she was considering in her own mind, as well as she could, whether the pleasure "
    "of making a daisy-chain would be worth the trouble.",
    "There was nothing so very remarkable in that.",
]
# Threads fixed so contention from other work on the machine does not stall OpenMP.
CPU = SynthSettings(device="cpu", threads=1, chunk_frames=0)


def snr_db(out: np.ndarray, ref: np.ndarray) -> float:
    assert len(out) == len(ref), (len(out), len(ref))
    noise = float(np.sum((out.astype(np.float64) - ref) ** 2))
    return (
        float("inf")
        if noise == 0
        else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)
    )


@pytest.fixture(scope="module")
def env_cache(cache_root: Path) -> Iterator[Path]:
    # Module-scoped objects are built before the per-test autouse fixture runs.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEKIT_CACHE", str(cache_root))
        yield cache_root


@pytest.fixture(scope="module")
def utts(bundled_voice: Voice) -> list[Utterance]:
    return [
        Utterance(np.asarray(bundled_voice.phoneme_ids(text), dtype=np.int64), (1234, 77, i))
        for i, text in enumerate(SENTENCES)
    ]


@pytest.fixture(scope="module")
def weights(bundled_voice: Voice) -> VoiceWeights:
    return load_weights(bundled_voice.model_path, bundled_voice.config)


@pytest.fixture(scope="module")
def ort_backend(bundled_voice: Voice, env_cache: Path) -> Iterator[OrtBackend]:
    backend = OrtBackend(bundled_voice, CPU.replace(backend="ort"), "cpu")
    yield backend
    backend.close()


def make(
    voice: Voice, weights: VoiceWeights, settings: SynthSettings = CPU, **kw: object
) -> TorchBackend:
    return TorchBackend(voice, settings, "cpu", weights=weights, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def torch_backend(bundled_voice: Voice, weights: VoiceWeights) -> TorchBackend:
    return make(bundled_voice, weights)


@pytest.fixture(scope="module")
def torch_audio(torch_backend: TorchBackend, utts: list[Utterance]) -> list[np.ndarray]:
    return torch_backend.synthesize(utts)


def test_registry_builds_the_torch_backend(bundled_voice: Voice) -> None:
    backend = create_backend("torch", bundled_voice, CPU, "cpu")
    try:
        assert backend.name == "torch" and backend.device == "cpu"
        assert backend.batch_sentences == 1  # type: ignore[attr-defined]
        assert backend.vocoder.hop == 256
        assert backend.acoustic.channels == 192
    finally:
        backend.close()


@pytest.mark.slow  # 26 s on the shared 2-core machine (--durations)
def test_vocoder_matches_onnxruntime_on_the_same_latents(
    ort_backend: OrtBackend, torch_backend: TorchBackend, utts: list[Utterance]
) -> None:
    latents = ort_backend.acoustic(utts)
    ref = ort_backend.vocoder(latents)
    out = torch_backend.vocoder(latents)
    for lat, a, r in zip(latents, out, ref, strict=True):
        assert a.dtype == np.float32 and len(a) == lat.frames * 256 == len(r)
        assert float(np.max(np.abs(a - r))) <= 1e-4


def test_acoustic_latents_match_onnxruntime(
    ort_backend: OrtBackend, torch_backend: TorchBackend, utts: list[Utterance]
) -> None:
    ref = ort_backend.acoustic(utts)
    out = torch_backend.acoustic(utts)
    for z, r in zip(out, ref, strict=True):
        assert tuple(z.shape) == r.z.shape  # same durations, frame for frame
        assert float(np.max(np.abs(z.numpy() - r.z))) < 1e-3


def test_whole_voice_matches_whole_onnx_with_the_same_noise(
    bundled_voice: Voice, env_cache: Path, utts: list[Utterance], torch_audio: list[np.ndarray]
) -> None:
    import onnxruntime as ort

    whole = split_voice(bundled_voice.model_path, bundled_voice.sha256, env_cache, with_whole=True)
    session = ort.InferenceSession(str(whole.deterministic), providers=["CPUExecutionProvider"])
    scales = np.array([0.667, 1.0, 0.8], dtype=np.float32)
    for utt, audio in zip(utts, torch_audio, strict=True):
        noise = Noise(utt.key)
        frames = len(audio) // 256
        feed = {
            "input": utt.ids[None],
            "input_lengths": np.array([len(utt.ids)], dtype=np.int64),
            "scales": scales,
            "noise_w": noise.duration(len(utt.ids))[None],
            "noise": noise.prior(192, frames)[None],
        }
        (ref,) = session.run(None, feed)
        assert snr_db(audio, ref.reshape(-1)) >= 40


def test_synthesize_matches_the_ort_backend(
    ort_backend: OrtBackend, utts: list[Utterance], torch_audio: list[np.ndarray]
) -> None:
    for audio, ref in zip(torch_audio, ort_backend.synthesize(utts), strict=True):
        assert snr_db(audio, ref) >= 40


@pytest.mark.parametrize(
    "pad_shapes, packing, window",
    [(False, False, 0), (True, False, 0), (False, True, 0), (False, True, 128)],
    ids=["exact-shapes", "padded", "packed", "packed-and-cut"],
)
def test_batched_equals_one_by_one(
    bundled_voice: Voice,
    weights: VoiceWeights,
    utts: list[Utterance],
    torch_audio: list[np.ndarray],
    pad_shapes: bool,
    packing: bool,
    window: int,
) -> None:
    backend = make(
        bundled_voice, weights, CPU.replace(batch_size=4), pad_shapes=pad_shapes, packing=packing
    )
    assert backend.batch_sentences == (512 if packing else 4)
    if window:  # rows narrower than the sentences: every long one is cut into pieces
        backend.window = window
        assert max(len(a) for a in torch_audio) > 2 * window * 256
    out = backend.synthesize(utts)
    assert len(out) == len(utts)
    for audio, single in zip(out, torch_audio, strict=True):
        # Padding (and the gaps between packed utterances) is masked between layers:
        # only float rounding differs.
        assert snr_db(audio, single) >= 60
        assert float(np.max(np.abs(audio - single))) < 1e-3
    if packing:
        # The four sentences share one row of ids: the encoder's attention, its
        # relative positions and the duration predictor's convolutions stay apart.
        assert sum(len(u.ids) for u in utts) + 3 * backend.id_gap <= ID_WINDOW
        (shape,) = backend.shapes["duration_rows"]
        assert shape[0][0] == 1, shape
        assert "durations" not in backend.shapes
        efficiency = backend.padding_efficiency()
        assert set(efficiency) == {"durations", "flow", "acoustic", "vocoder"}
        assert all(0 < v <= 1 for v in efficiency.values())
        assert backend.graph_count() == sum(len(v) for v in backend.shapes.values())


def test_packed_vocoder_equals_one_by_one_and_keeps_the_order(
    bundled_voice: Voice, weights: VoiceWeights, torch_backend: TorchBackend, utts: list[Utterance]
) -> None:
    latents = torch_backend.acoustic(utts)
    single = [torch_backend.vocoder([z])[0] for z in latents]
    packed = make(bundled_voice, weights, CPU.replace(batch_size=4))
    assert packed.packing
    packed.window = 96  # cut the long ones, share rows among the short ones
    shuffled = [3, 0, 2, 1]
    out = packed.vocoder([latents[i] for i in shuffled])
    for got, i in zip(out, shuffled, strict=True):
        assert len(got) == len(single[i])
        assert snr_db(got, single[i]) >= 60
    assert set(packed.shapes) == {"dec_rows"}


def _chunked(
    voice: Voice, weights: VoiceWeights, latents: Sequence[object], overlap: int
) -> list[np.ndarray]:
    settings = CPU.replace(chunk_frames=32, overlap_frames=overlap)
    return make(voice, weights, settings).vocoder(latents)


@pytest.mark.slow  # 41 s on the shared 2-core machine (--durations)
def test_chunked_vocoding_equals_whole(
    bundled_voice: Voice, weights: VoiceWeights, torch_backend: TorchBackend, utts: list[Utterance]
) -> None:
    latents = torch_backend.acoustic(utts)
    assert max(z.shape[-1] for z in latents) > 3 * 32  # several chunks per sentence
    whole = torch_backend.vocoder(latents)
    at_default = _chunked(bundled_voice, weights, latents, overlap=16)
    at_field = _chunked(bundled_voice, weights, latents, overlap=max(torch_backend.rf))
    too_short = _chunked(bundled_voice, weights, latents, overlap=4)
    for w, a, b, c in zip(whole, at_default, at_field, too_short, strict=True):
        assert snr_db(a, w) >= 80 and snr_db(b, w) >= 80
        # The overlap is what makes seams exact: cutting it below the field shows.
        if len(w) > 32 * 256:
            assert snr_db(c, w) < snr_db(b, w) - 10


def test_same_keys_give_the_same_audio_in_any_order(
    torch_backend: TorchBackend, utts: list[Utterance], torch_audio: list[np.ndarray]
) -> None:
    again = torch_backend.synthesize(list(reversed(utts)))[::-1]
    for a, b in zip(again, torch_audio, strict=True):
        np.testing.assert_array_equal(a, b)
    reseeded = [Utterance(u.ids, (4321, *u.key[1:])) for u in utts[:1]]
    other = torch_backend.synthesize(reseeded)[0]
    n = min(len(other), len(torch_audio[0]))
    assert float(np.max(np.abs(other[:n] - torch_audio[0][:n]))) > 1e-2


def test_vocoder_takes_numpy_and_tensor_latents(torch_backend: TorchBackend) -> None:
    z = np.random.default_rng(0).standard_normal((192, 20), dtype=np.float32)
    from_numpy = torch_backend.vocoder([z])[0]
    from_tensor = torch_backend.vocoder([torch.from_numpy(z)])[0]
    assert len(from_numpy) == 20 * 256
    np.testing.assert_array_equal(from_numpy, from_tensor)


def test_reduced_precision_decoder_stays_close(weights: VoiceWeights) -> None:
    """The bf16 decoder path (a CUDA option) runs the same masked code; its error is bounded."""
    import copy

    from voicekit.backends.torch.model import build_model

    dec = build_model(weights).dec
    half = copy.deepcopy(dec).to(torch.bfloat16)
    z = torch.randn(2, 192, 24, generator=torch.Generator().manual_seed(1))
    lengths = torch.tensor([24, 17])
    with torch.inference_mode():
        ref = dec(z, lengths=lengths).reshape(2, -1).numpy()
        out = half(z.to(torch.bfloat16), lengths=lengths).float().reshape(2, -1).numpy()
    assert snr_db(out[0], ref[0]) > 15
    # Past the last conv's reach into the padding, masked layers leave exact silence.
    reach = weights.arch.conv("dec.conv_post").pads[1]
    assert not np.any(out[1, 17 * 256 + reach :])


# -- CUDA (skipped without it) -----------------------------------------------------------------


def _cuda(voice: Voice, weights: VoiceWeights, **changes: object) -> TorchBackend:
    settings = SynthSettings(device="cuda:0").replace(**changes)
    return TorchBackend(voice, settings, "cuda:0", weights=weights)


def _graphs(backend: TorchBackend) -> int:
    return sum(len(f) for f in backend._fns.values() if isinstance(f, GraphCache))


@pytest.mark.gpu
def test_cuda_vocoder_matches_onnxruntime(
    bundled_voice: Voice, weights: VoiceWeights, ort_backend: OrtBackend, utts: list[Utterance]
) -> None:
    latents = ort_backend.acoustic(utts)
    ref = ort_backend.vocoder(latents)
    for graphs in (False, True):
        backend = _cuda(bundled_voice, weights, cuda_graphs=graphs)
        for a, r in zip(backend.vocoder(latents), ref, strict=True):
            assert float(np.max(np.abs(a - r))) <= 1e-4
        backend.close()


@pytest.mark.gpu
def test_cuda_pipeline_matches_onnxruntime_with_overlapped_streams(
    bundled_voice: Voice, weights: VoiceWeights, ort_backend: OrtBackend, utts: list[Utterance]
) -> None:
    ref = ort_backend.synthesize(utts)
    # batch 2: two acoustic groups, the second overlapping the first one's vocoder.
    backend = _cuda(bundled_voice, weights, batch_size=2, chunk_frames=64)
    for a, r in zip(backend.synthesize(utts), ref, strict=True):
        assert snr_db(a, r) >= 40
    assert _graphs(backend) > 0
    backend.close()


@pytest.mark.gpu
@pytest.mark.parametrize(("precision", "floor"), [("bf16", 20.0), ("fp16", 25.0)])
def test_cuda_reduced_precision_error_is_bounded(
    bundled_voice: Voice,
    weights: VoiceWeights,
    ort_backend: OrtBackend,
    utts: list[Utterance],
    precision: str,
    floor: float,
) -> None:
    latents = ort_backend.acoustic(utts)
    ref = ort_backend.vocoder(latents)
    backend = _cuda(bundled_voice, weights, precision=precision)
    for a, r in zip(backend.vocoder(latents), ref, strict=True):
        assert snr_db(a, r) >= floor
    backend.close()


@pytest.mark.gpu
def test_cuda_memory_is_flat_across_calls(
    bundled_voice: Voice, weights: VoiceWeights, utts: list[Utterance]
) -> None:
    backend = _cuda(bundled_voice, weights)
    backend.synthesize(utts)
    after_first = torch.cuda.memory_allocated("cuda:0")
    for _ in range(5):
        backend.synthesize(utts)
        assert abs(torch.cuda.memory_allocated("cuda:0") - after_first) < 2**20
    backend.close()


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_compiled_matches_eager(
    bundled_voice: Voice, weights: VoiceWeights, utts: list[Utterance]
) -> None:
    eager = _cuda(bundled_voice, weights).synthesize(utts)
    compiled = _cuda(bundled_voice, weights, compile=True).synthesize(utts)
    for a, b in zip(compiled, eager, strict=True):
        assert snr_db(a, b) >= 60


# -- precision flags -------------------------------------------------------------------------


def test_no_legacy_tf32_flag_is_read_or_set_anywhere() -> None:
    """torch >= 2.9 raises on the legacy flags once the per-op API was used."""
    import voicekit

    root = Path(voicekit.__file__).parent
    legacy = ("allow_tf32", "cudnn.flags(", "set_float32_matmul_precision")
    hits = [
        f"{path.relative_to(root)}: {word}"
        for path in root.rglob("*.py")
        for word in legacy
        if word in path.read_text("utf-8")
    ]
    assert hits == []


def test_fp32_ieee_scopes_the_per_op_precision() -> None:
    from voicekit.backends.torch.backend import fp32_ieee

    conv, matmul = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    # The state 'fp32_precision="tf32"' for ('cuda', 'all') leaves behind, which made
    # reading the legacy matmul flag raise RuntimeError on torch 2.13.
    with torch.backends.cudnn.flags(enabled=True, fp32_precision="tf32"):
        before = (conv.fp32_precision, matmul.fp32_precision)
        with fp32_ieee():
            assert (conv.fp32_precision, matmul.fp32_precision) == ("ieee", "ieee")
            assert torch.backends.cudnn.benchmark
        assert (conv.fp32_precision, matmul.fp32_precision) == before


def test_prepared_shapes_are_all_a_packed_call_uses(
    bundled_voice: Voice, weights: VoiceWeights, utts: list[Utterance]
) -> None:
    backend = make(bundled_voice, weights, CPU.replace(batch_size=4))
    backend.window = 128  # small rows: four sentences fill several, cut and shared
    assert backend.row_shapes() == [(1, 128), (2, 128), (4, 128), (1, 32), (1, 64)]
    # Rows of 384 ids (273 + 97 and 155 + 21, the last row 192 wide); none longer
    # than a row (those run alone, padded). Row counts 4 and 1, lone rows in eighths.
    backend.id_window = 384
    assert max(len(u.ids) for u in utts) <= 384 < sum(len(u.ids) for u in utts)
    assert backend.id_row_shapes() == [
        (1, 384), (4, 384), (1, 96), (1, 144), (1, 192), (1, 240), (1, 336)
    ]  # fmt: skip
    backend.prepare_shapes()
    prepared = {k: set(v) for k, v in backend.shapes.items()}
    assert {s[0] for s in prepared["duration_rows"]} == set(backend.id_row_shapes())
    assert {s[0][::2] for s in prepared["dec_rows"]} == {
        (r, w) for r, w in backend.row_shapes()
    }
    backend.synthesize(utts)
    # Durations, flow and decoder met no shape that was not captured at load.
    assert len(backend.shapes["duration_rows"]) > 1
    assert backend.shapes["duration_rows"] == prepared["duration_rows"]
    assert backend.shapes["flow_rows"] == prepared["flow_rows"]
    assert backend.shapes["dec_rows"] == prepared["dec_rows"]


def test_packed_noise_pool_and_async_totals_change_no_byte(
    bundled_voice: Voice,
    weights: VoiceWeights,
    utts: list[Utterance],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from voicekit.backends.torch import packed
    from voicekit.backends.torch.noise import PriorNoise
    from voicekit.backends.torch.transfer import HostCopy

    drawn: list[int] = []
    copies: list[tuple[int, ...]] = []

    class CountedNoise(PriorNoise):
        def __init__(self, *args: object, **kw: object) -> None:
            super().__init__(*args, **kw)  # type: ignore[arg-type]
            drawn.append(self.buffer.numel())

    class CountedCopy(HostCopy):
        def __init__(self, tensor: torch.Tensor, cuda: bool) -> None:
            super().__init__(tensor, cuda)
            copies.append(tuple(tensor.shape))

    monkeypatch.setattr(packed, "PriorNoise", CountedNoise)
    monkeypatch.setattr(packed, "HostCopy", CountedCopy)
    outputs = []
    for threads in (0, 2):
        backend = make(bundled_voice, weights, CPU.replace(batch_size=4), noise_threads=threads)
        assert (backend.noise_pool is None) == (threads == 0)
        backend.window = 128  # long sentences cut over rows, short ones sharing
        outputs.append(backend.synthesize(utts))
        backend.close()
    inline, pooled = outputs
    assert all(a.tobytes() == b.tobytes() for a, b in zip(inline, pooled, strict=True))
    # Against the one-by-one path (its own noise drawn by Noise.prior): the same audio.
    alone = make(bundled_voice, weights).synthesize(utts)
    assert all(snr_db(a, b) >= 60 for a, b in zip(pooled, alone, strict=True))
    hop, channels = weights.arch.hop, weights.arch.inter
    frames = sum(len(a) for a in pooled) // hop
    assert drawn == [channels * frames] * 2  # real frames only, no padding drawn
    # The call's frame totals came back through one HostCopy (then the decoder's rows).
    assert copies.count((len(utts),)) == 2


@pytest.mark.parametrize("packing", [False, True], ids=["grouped", "packed"])
def test_each_call_tells_its_acoustic_and_vocoder_seconds(
    bundled_voice: Voice, weights: VoiceWeights, utts: list[Utterance], packing: bool
) -> None:
    # the run summary's stages (issue 11) split the network's time by these
    backend = make(bundled_voice, weights, CPU.replace(batch_size=4), packing=packing)
    try:
        assert backend.take_timings() == {}
        backend.synthesize(utts[:2])
        first = backend.take_timings()
        assert set(first) == {"acoustic", "vocoder"} and min(first.values()) > 0
        assert backend.take_timings() == {}  # taken: the next call starts from nothing
    finally:
        backend.close()


def test_onnxruntime_tells_its_stage_seconds_too(
    ort_backend: OrtBackend, utts: list[Utterance]
) -> None:
    ort_backend.take_timings()
    ort_backend.synthesize(utts[:2])
    found = ort_backend.take_timings()
    assert set(found) == {"acoustic", "vocoder"} and min(found.values()) > 0
    assert ort_backend.take_timings() == {}
