"""The memory estimate and fit_batch; the vocoder term is checked against a CPU measurement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from voicekit.backends import memory, voice_graph
from voicekit.backends.memory import decoder_shape, estimate_memory, fit_batch, packed_memory
from voicekit.backends.torch.shapes import (
    CUDA_FRAME_BUDGET,
    ID_WINDOW,
    MAX_PACK_ROWS,
    PACK_WINDOW,
    pack_rows,
    row_batches,
)
from voicekit.backends.voices import load_voice
from voicekit.errors import DeviceError
from voicekit.settings import SynthSettings


def test_decoder_shape_of_the_bundled_voice(bundled_voice: Any) -> None:
    shape = decoder_shape(bundled_voice)
    assert shape.from_graph
    assert (shape.channels, shape.hop) == (192, bundled_voice.hop_length)
    # last level: 32 channels x 256 upsampling, kernel 7: (32*7 + 2*32) * 256
    assert shape.floats_per_frame == 73728


def test_unreadable_model_falls_back_to_defaults(tmp_path: Path, bundled_voice: Any) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    (tmp_path / "bad.onnx.json").write_text(bundled_voice.config_path.read_text())
    assert decoder_shape(load_voice(bad)) == voice_graph.DEFAULT_DECODER


def test_a_graph_without_a_decoder_gives_the_defaults() -> None:
    from onnx import helper

    empty = helper.make_graph([], "empty", [], [])
    assert voice_graph.decoder_shape_from_graph(empty) == voice_graph.DEFAULT_DECODER


def test_vocoder_scales_with_batch_for_torch_only(bundled_voice: Any) -> None:
    s = SynthSettings()
    t1 = estimate_memory(s, bundled_voice, "cuda:0", "torch", 1)
    t8 = estimate_memory(s, bundled_voice, "cuda:0", "torch", 8)
    o1 = estimate_memory(s, bundled_voice, "cuda:0", "ort", 1)
    o8 = estimate_memory(s, bundled_voice, "cuda:0", "ort", 8)
    # torch's decoder pool holds its largest row batch: min(32, batch) rows.
    shape = decoder_shape(bundled_voice)
    one, eight = (packed_memory(shape, b, graphs=True) for b in (1, 8))
    assert eight.pools["decoder"] == pytest.approx(8 * one.pools["decoder"])
    assert t8.vocoder_mb > 4 * t1.vocoder_mb
    assert o8.vocoder_mb == pytest.approx(o1.vocoder_mb)  # ort vocodes one sentence at a time
    assert o8.acoustic_mb == pytest.approx(8 * o1.acoustic_mb)


def test_chunks_and_half_precision_shrink_the_vocoder(bundled_voice: Any) -> None:
    plain = SynthSettings(chunk_frames=0, cuda_graphs=False)
    chunks = plain.replace(chunk_frames=256, overlap_frames=16)
    whole = estimate_memory(plain, bundled_voice, "cuda:0", "torch", 4)
    chunked = estimate_memory(chunks, bundled_voice, "cuda:0", "torch", 4)
    half = estimate_memory(plain.replace(precision="bf16"), bundled_voice, "cuda:0", "torch", 4)
    # torch on CUDA packs rows of 1,024 frames, chunk setting or not: 4 rows a call.
    assert (whole.vocoder_rows, whole.vocoder_frames) == (4, PACK_WINDOW)
    assert chunked.vocoder_mb == whole.vocoder_mb
    assert half.vocoder_mb == pytest.approx(whole.vocoder_mb / 2)
    # onnxruntime vocodes one sentence, or one chunk window (256 + 2 x 16), at a time.
    ort_whole = estimate_memory(plain, bundled_voice, "cuda:0", "ort", 4)
    ort_chunked = estimate_memory(chunks, bundled_voice, "cuda:0", "ort", 4)
    assert (ort_whole.vocoder_rows, ort_whole.vocoder_frames) == (1, 1620)
    assert ort_chunked.vocoder_mb == pytest.approx(ort_whole.vocoder_mb * 288 / 1620)


def _largest_torch_call(frames: int, batch: int) -> tuple[int, int]:
    """The largest (rows, frames) call the packed torch backend makes for a full call of
    512 sentences of ``frames`` latent frames, from its own packing functions."""
    rows, _ = pack_rows([frames] * 512, PACK_WINDOW, 11, 43)
    batches = row_batches(rows, min(MAX_PACK_ROWS, batch), last_alone=True)
    return max(len(b) for b in batches), PACK_WINDOW


@pytest.mark.parametrize(
    ("changes", "batch"),
    [
        ({"chunk_frames": 0, "cuda_graphs": False}, 8),
        ({"chunk_frames": 0, "cuda_graphs": True}, 64),
        ({"chunk_frames": 256, "overlap_frames": 16}, 8),
        ({"chunk_frames": 300, "overlap_frames": 11, "cuda_graphs": False}, 5),
        ({"chunk_frames": 2048, "overlap_frames": 16}, 33),
        ({"chunk_frames": 0, "max_sentence_phonemes": 1200}, 64),
    ],
)
def test_torch_vocoder_estimate_is_the_backends_largest_call(
    bundled_voice: Any, changes: dict[str, Any], batch: int
) -> None:
    s = SynthSettings().replace(**changes).validate()
    e = estimate_memory(s, bundled_voice, "cuda:0", "torch", batch)
    assert (e.vocoder_rows, e.vocoder_frames) == _largest_torch_call(e.longest_frames, batch)


def test_cuda_padded_shapes_and_frame_budget(bundled_voice: Any) -> None:
    graphs = SynthSettings(chunk_frames=0, cuda_graphs=True)
    e33 = estimate_memory(graphs, bundled_voice, "cuda:0", "torch", 33)
    e64 = estimate_memory(graphs, bundled_voice, "cuda:0", "torch", 64)
    assert e33.total_mb == e64.total_mb  # 33 sentences cost as much as 64
    # 32 rows of 1,024 frames fill the 32,768-frame budget
    assert (e64.vocoder_rows, e64.vocoder_frames) == (32, 1024)
    assert e64.vocoder_rows * e64.vocoder_frames == CUDA_FRAME_BUDGET
    batch, _ = fit_batch(
        graphs.replace(batch_size=64),
        bundled_voice,
        "cuda:0",
        "torch",
        free_mb=e64.total_mb / memory.HEADROOM - 1,
    )
    # 32 rows a flow/decoder batch and 16 a duration batch at most, 512 sentences a
    # call: 32-64 cost the same, so the batch drops below 32.
    assert batch == 31
    e31 = estimate_memory(graphs, bundled_voice, "cuda:0", "torch", 31)
    assert (
        e31.total_mb
        < e64.total_mb
        == estimate_memory(graphs, bundled_voice, "cuda:0", "torch", 32).total_mb
    )


def test_longest_sentence_follows_the_phoneme_cap(bundled_voice: Any) -> None:
    # 0.047 s per phoneme at 22,050 Hz / hop 256 = 4.05 frames per phoneme
    assert memory.longest_frames(SynthSettings(max_sentence_phonemes=400), bundled_voice) == 1620
    assert (
        memory.longest_frames(
            SynthSettings(max_sentence_phonemes=400, length_scale=2.0), bundled_voice
        )
        == 3239
    )


def test_overlapping_calls_price_the_next_calls_durations(bundled_voice: Any) -> None:
    """Issue 16, item 3: on CUDA call N+1's durations run beside call N's flow and decoder,
    so N+1's kept duration outputs (and one duration batch's inputs) are live beside N's
    (freed on the host, held by the allocator until N's flow has read them)."""
    shape, c = decoder_shape(bundled_voice), 192
    alone = packed_memory(shape, 64, graphs=True)
    both = packed_memory(shape, 64, graphs=True, overlap=True)
    # Sentences of 801 ids, one to a row of 1,024: 512 rows of outputs (w_ceil, m_p, logs_p)
    # a call; the largest duration batch is 16 rows of ids, segments, owners and noise.
    kept = 512 * ID_WINDOW * 4 * (1 + 2 * c)
    assert alone.overlap == 0
    assert both.overlap == kept + 16 * ID_WINDOW * (3 * 8 + 2 * 4)
    assert both.call == alone.call  # one call's tensors, as before; the next call's beside
    assert both.total(1.2) - alone.total(1.2) == pytest.approx(1.2 * both.overlap)
    # Without graphs, one allocator: the next call's duration temporaries beside the
    # larger of this call's flow and decoder.
    eager = packed_memory(shape, 64, graphs=False, overlap=True)
    pools = eager.pools
    assert eager.total() == pools["durations"] + max(pools["flow"], pools["decoder"]) + (
        eager.call + eager.overlap
    )
    # What fit_batch weighs: the overlap on CUDA, where calls overlap; not on the CPU.
    s = SynthSettings()
    cuda = estimate_memory(s, bundled_voice, "cuda:0", "torch", 64)
    cpu = estimate_memory(s, bundled_voice, "cpu", "torch", 64)
    on_cuda = packed_memory(
        shape, 64, graphs=True, overlap=True, longest_frames=cuda.longest_frames
    )
    on_cpu = packed_memory(shape, 64, graphs=False, longest_frames=cpu.longest_frames)
    slack = memory.SLACK["torch"]
    assert cuda.acoustic_mb + cuda.vocoder_mb == pytest.approx(on_cuda.total(slack) / 2**20)
    assert cpu.acoustic_mb + cpu.vocoder_mb == pytest.approx(on_cpu.total() / 2**20)
    # A card that holds one call's work but not the next call's durations beside it:
    # fit_batch lowers the batch rather than run out half-way through a book.
    without = cuda.total_mb - slack * both.overlap / 2**20
    free = (without + 1) / memory.HEADROOM
    assert (
        fit_batch(s.replace(batch_size=64), bundled_voice, "cuda:0", "torch", free_mb=free)[0] < 64
    )


def test_fit_batch_keeps_a_batch_that_fits(bundled_voice: Any) -> None:
    s = SynthSettings(batch_size=16, chunk_frames=512)
    assert fit_batch(s, bundled_voice, "cuda:0", "torch", free_mb=80_000) == (16, "")


def test_fit_batch_lowers_and_says_so(bundled_voice: Any) -> None:
    s = SynthSettings(batch_size=64, chunk_frames=2048)
    batch, note = fit_batch(s, bundled_voice, "cuda:0", "torch", free_mb=12_000)
    assert 1 <= batch < 64
    assert estimate_memory(s, bundled_voice, "cuda:0", "torch", batch).total_mb <= 10_800
    assert estimate_memory(s, bundled_voice, "cuda:0", "torch", batch + 1).total_mb > 10_800
    assert note.startswith(f"batch size lowered from 64 to {batch}")
    assert "cuda:0 has 12,000 MB free" in note
    # the gpu-large profile on a 24 GB card fits as it is: the frame budget caps the vocoder
    assert fit_batch(s, bundled_voice, "cuda:0", "torch", free_mb=24_000) == (64, "")


def test_fit_batch_uses_the_device_default_batch(bundled_voice: Any) -> None:
    assert fit_batch(SynthSettings(), bundled_voice, "cpu", "ort", free_mb=50_000) == (1, "")
    assert fit_batch(SynthSettings(), bundled_voice, "cuda:0", "ort", free_mb=80_000) == (8, "")


def test_fit_batch_refuses_with_the_numbers(bundled_voice: Any) -> None:
    with pytest.raises(DeviceError) as info:
        fit_batch(SynthSettings(chunk_frames=0), bundled_voice, "cuda:0", "ort", free_mb=1750)
    assert info.value.exit_code == 5
    assert "not enough memory on cuda:0: ~" in info.value.message
    assert "cuda:0 has 1,750 MB free" in info.value.message
    assert info.value.hint == "vocode in pieces with --chunk-frames 512, or free memory on cuda:0"
    # torch packs fixed rows: chunks would not help, so the hint does not offer them.
    with pytest.raises(DeviceError) as info:
        fit_batch(SynthSettings(chunk_frames=0), bundled_voice, "cuda:0", "torch", free_mb=1400)
    assert info.value.hint == "try --max-sentence-phonemes 200, --backend ort, or --device cpu"


def test_fit_batch_without_a_memory_reading_keeps_the_batch(
    bundled_voice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "available_mb", lambda device: None)
    assert fit_batch(SynthSettings(batch_size=512), bundled_voice, "cuda:3", "torch") == (512, "")


# Peak RSS growth while the vocoder runs: reset the high-water mark (clear_refs 5, Linux
# 4.0+), then read VmHWM. ru_maxrss cannot serve: a child inherits its parent's peak.
_MEASURE = """
import json, sys
import numpy as np, onnxruntime as ort
folder, frames = sys.argv[1], int(sys.argv[2])
meta = json.load(open(folder + "/meta.json"))
opts = ort.SessionOptions(); opts.intra_op_num_threads = 1
sess = ort.InferenceSession(folder + "/vocoder.onnx", opts, providers=["CPUExecutionProvider"])
def run(n):
    z = np.random.default_rng(0).standard_normal((1, meta["channels"], n), dtype=np.float32)
    return sess.run([meta["output"]], {meta["latents"]: z})
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
run(16)
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")
base = status("VmRSS")
run(frames)
print(json.dumps(status("VmHWM") - base))
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/self/status")
def test_vocoder_estimate_bounds_the_measured_cpu_peak(bundled_voice: Any) -> None:
    """The formula's vocoder term against onnxruntime's real peak on 1,024 frames."""
    from voicekit.backends.voice_graph import split_voice
    from voicekit.system.paths import cache_dir

    split = split_voice(bundled_voice.model_path, bundled_voice.sha256, cache_dir())
    frames = 1024
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(split.folder), str(frames)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    estimate = decoder_shape(bundled_voice).floats_per_frame * 4 * frames
    # An upper bound, not a wild one: 226-235 KB/frame measured here against 295 KB.
    assert 0.5 * estimate < measured <= estimate + memory.FIXED_MB * 2**20


# -- the packed torch policy, against the real model on meta tensors -----------------------------
def _live_peak() -> Any:
    """A dispatch mode that tracks the peak bytes of live tensor storage (meta works too)."""
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LivePeak(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live: dict[int, int] = {}
            self.now = self.peak = 0

        def _gone(self, key: int) -> None:
            self.now -= self.live.pop(key)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor) and id(t.untyped_storage()) not in self.live:
                    storage = t.untyped_storage()
                    self.live[id(storage)] = storage.nbytes()
                    self.now += storage.nbytes()
                    self.peak = max(self.peak, self.now)
                    weakref.finalize(storage, self._gone, id(storage))
            return out

    return LivePeak()


def test_packed_estimate_matches_the_graphs_the_gpu_large_profile_keeps(
    bundled_voice: Any,
) -> None:
    """Each shape the backend captures under gpu-large, run through the real model on
    meta tensors (shapes and bytes, no compute): its static buffers (input copies and
    outputs) equal the estimate's, and its temporaries lie within the estimate's bound."""
    torch = pytest.importorskip("torch")
    from voicekit.backends.torch.backend import TorchBackend
    from voicekit.profiles import load_profile

    values = load_profile("gpu-large").values
    settings = SynthSettings(device="cpu", threads=1, batch_size=values["batch_size"])
    backend = TorchBackend(bundled_voice, settings, "cpu")  # the CPU, packed, no graphs
    backend.model.to("meta")
    c, meta = backend.arch.inter, torch.device("meta")
    fns = backend._fns

    def inputs(stage: str, rows: int, width: int) -> list[Any]:
        if stage == "durations":
            ids = torch.zeros(rows, width, dtype=torch.int64, device=meta)
            return [ids, ids.clone(), torch.zeros(rows, 2, width, device=meta)]
        x = torch.zeros(rows, c, width, device=meta)
        mask = torch.zeros(rows, 1, width, device=meta)
        return [x, x.clone(), x.clone(), mask] if stage == "flow" else [x, mask]

    names = {"durations": "duration_rows", "flow": "flow_rows", "decoder": "dec_rows"}
    shapes = {
        "durations": backend.id_row_shapes(),
        "flow": backend.row_shapes(),
        "decoder": backend.row_shapes(),
    }
    estimate = packed_memory(decoder_shape(bundled_voice), values["batch_size"], graphs=True)
    assert estimate.shapes == shapes  # the same shapes prepare_shapes captures
    for stage, kept in shapes.items():
        static = peak = 0
        for rows, width in kept:
            args = inputs(stage, rows, width)
            with torch.inference_mode(), _live_peak() as tracker:
                outs = fns[names[stage]](*args)
            storages = {id(t.untyped_storage()): t.untyped_storage() for t in [*args, *outs]}
            static += sum(st.nbytes() for st in storages.values())  # outputs may share one
            peak = max(peak, tracker.peak)
        assert estimate.static[stage] == static, stage
        # The formula bounds the measured temporaries, and not loosely.
        assert peak <= estimate.pools[stage] <= 1.25 * peak, (stage, peak, estimate.pools)
    backend.close()
    # estimate_memory (what fit_batch weighs) is this breakdown plus context and weights.
    large = SynthSettings(**values)
    e = estimate_memory(large, bundled_voice, "cuda:0", "torch", 64)
    assert e.longest_frames == 1620 and large.max_sentence_phonemes == 400  # 801 ids
    slack = memory.SLACK["torch"]
    overlapping = packed_memory(
        decoder_shape(bundled_voice), values["batch_size"], graphs=True, overlap=True
    )  # calls overlap on CUDA
    assert e.acoustic_mb + e.vocoder_mb == pytest.approx(overlapping.total(slack) / 2**20)
    assert e.vocoder_mb == pytest.approx(estimate.stage("decoder", slack) / 2**20)
    assert fit_batch(large, bundled_voice, "cuda:0", "torch", free_mb=80_000) == (64, "")
    budget = (e.total_mb - 1) / memory.HEADROOM  # just short: fit_batch lowers the batch
    assert fit_batch(large, bundled_voice, "cuda:0", "torch", free_mb=budget)[0] < 64
