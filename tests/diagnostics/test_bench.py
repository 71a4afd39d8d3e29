"""The bench library: its text, its comparisons, and a tiny real run on the CPU."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.backends.no_torch import block_torch
from voicekit.backends.voices import Voice
from voicekit.diagnostics import bench
from voicekit.diagnostics.bench import (
    CPU_DEFAULT,
    STAGES,
    bench_sentences,
    bench_utterances,
    compare,
    estimate_seconds,
    pick_variants,
    resolve_device,
    run_bench,
)
from voicekit.errors import DeviceError, InputError
from voicekit.system.devices import torch_cuda_count


def test_bench_text_ships_with_the_package(bundled_voice: Voice) -> None:
    sentences = bench_sentences(bundled_voice)
    assert len(sentences) > 40
    assert sentences[0].startswith("Alice was beginning")
    assert not any("Gutenberg" in s or s.startswith("#") for s in sentences)


def test_bench_utterances_cover_the_asked_length(bundled_voice: Voice) -> None:
    texts, utts = bench_utterances(bundled_voice, 20)
    assert sum(len(t) for t in texts) >= 20 * 14
    assert len({u.key for u in utts}) == len(utts)  # own noise per sentence
    # Past the end of the text it starts over, with new keys.
    long_texts, long_utts = bench_utterances(bundled_voice, 600)
    assert len(long_texts) > len(bench_sentences(bundled_voice))
    assert len({u.key for u in long_utts}) == len(long_utts)


def test_compare_reports_snr_max_diff_and_length_mismatches() -> None:
    t = np.arange(8000, dtype=np.float32)
    ref = np.sin(t / 10).astype(np.float32)
    assert compare([ref], [ref]) == (None, 0.0, 0)
    noise = np.full_like(ref, 0.01)
    snr, worst, mismatched = compare([ref + noise], [ref])
    assert snr == pytest.approx(
        10 * math.log10(np.mean(ref.astype(np.float64) ** 2) / 1e-4), abs=0.01
    )
    assert worst == pytest.approx(0.01, rel=1e-3)
    assert mismatched == 0
    _, _, mismatched = compare([ref[:-10], ref], [ref, ref])
    assert mismatched == 1


def test_pick_variants() -> None:
    assert [v.name for v in pick_variants(None, "cpu", False)] == list(CPU_DEFAULT)
    assert [v.name for v in pick_variants(["torch"], "cpu", True)] == ["torch", "piper"]
    with pytest.raises(InputError, match="unknown variant"):
        pick_variants(["torch-warp"], "cpu", False)


def test_resolve_device() -> None:
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(InputError):
        resolve_device("tpu")
    if not torch_cuda_count():
        assert resolve_device("auto") == "cpu"
        with pytest.raises(DeviceError):
            resolve_device("cuda")


def test_run_bench_measures_every_variant_on_the_cpu(bundled_voice: Voice) -> None:
    pytest.importorskip("torch")
    messages: list[str] = []
    report = run_bench(
        bundled_voice,
        device="cpu",
        seconds=2,
        # ort not first: it is the baseline wherever it was asked for.
        variants=["torch", "ort", "torch-chunked", "torch-cudagraph"],
        threads=1,
        progress=messages.append,
    )
    assert report.audio_seconds >= 2
    assert report.receptive_field_frames == 11
    assert {(v.name, v.stage) for v in report.variants} == {
        (name, stage)
        for name in ("ort", "torch", "torch-chunked")
        for stage in ("vocoder", "pipeline")
    }
    assert {s["name"] for s in report.skipped} == {"torch-cudagraph"}  # needs CUDA
    baseline = {v.stage: v.x_realtime for v in report.variants if v.name == "ort"}
    for v in report.variants:
        assert v.x_realtime > 0 and math.isfinite(v.x_realtime)
        assert v.peak_mem_mb > 0 and v.mem_kind == "rss"
        assert v.audio_seconds == pytest.approx(report.audio_seconds, abs=0.05)
        assert v.speedup == pytest.approx(v.x_realtime / baseline[v.stage], abs=2e-3)
        if v.name != "ort":  # ort is the reference itself
            assert v.snr_db is not None and v.snr_db >= 40
            assert v.max_abs_diff is not None and 0 < v.max_abs_diff < 1e-2
            assert v.length_mismatches == 0
    assert any("torch-chunked" in m for m in messages)
    # an estimate first, then each measurement announced and its result (regression:
    # a 15-minute default run started with no word of how long it would take)
    assert messages[0].startswith("6 measurements of about 2 s of audio each; estimate: about")
    assert "from speeds measured" in messages[0]
    assert [m.split()[0] for m in messages if m.startswith("[")] == [
        f"[{i}/6]" for i in range(1, 7)
    ]
    assert sum("x real time (" in m for m in messages) == 6
    assert report.fastest in {"ort", "torch", "torch-chunked"}
    assert report.auto == "ort on cpu"
    assert all(v.busy_cores is None or v.busy_cores >= 0 for v in report.variants)


def test_estimate_from_measured_cpu_speeds() -> None:
    chosen = pick_variants(["ort", "torch", "torch-chunked"], "cpu", against_piper=True)
    short = estimate_seconds(chosen, STAGES, 10, "cpu", threads=2)
    long = estimate_seconds(chosen, STAGES, 240, "cpu", threads=2)
    assert short is not None and long is not None and 0 < short < long
    # one core takes about twice as long for the timed passes
    one_core = estimate_seconds(chosen, STAGES, 240, "cpu", threads=1)
    assert one_core is not None and one_core > 1.8 * long - 20
    assert estimate_seconds(chosen, STAGES, 240, "cuda:0", threads=0) is None  # not measured


def test_run_bench_without_torch_skips_the_torch_variants(
    bundled_voice: Voice, monkeypatch: pytest.MonkeyPatch
) -> None:
    block_torch(monkeypatch)
    report = run_bench(
        bundled_voice,
        device="cpu",
        seconds=1,
        variants=["ort", "torch"],
        stages=["vocoder"],
        threads=1,
    )
    assert [v.name for v in report.variants] == ["ort"]
    assert report.receptive_field_frames is None
    (skipped,) = report.skipped
    assert skipped["name"] == "torch" and "missing (torch)" in skipped["reason"]


@pytest.mark.slow
def test_run_bench_against_the_piper_cli(bundled_voice: Voice) -> None:
    report = run_bench(
        bundled_voice,
        device="cpu",
        seconds=2,
        variants=["ort"],
        stages=["pipeline"],
        against_piper=True,
        threads=1,
    )
    (piper,) = [v for v in report.variants if v.name == "piper"]
    assert piper.stage == "pipeline" and piper.x_realtime > 0 and piper.audio_seconds > 1
    assert piper.snr_db is None  # its own noise and pauses: not comparable sample for sample


def test_a_failing_variant_is_reported_and_the_others_still_run(
    bundled_voice: Voice, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("torch")
    real = bench._measure

    def measure(voice: Voice, variant: Any, *args: Any) -> Any:
        if variant.name == "torch":  # as torch 2.13 does on a legacy TF32 flag
            raise RuntimeError("PyTorch is checking whether allow_tf32_new is enabled\nmore")
        return real(voice, variant, *args)

    monkeypatch.setattr(bench, "_measure", measure)
    report = run_bench(
        bundled_voice,
        device="cpu",
        seconds=1,
        variants=["ort", "torch", "torch-chunked"],
        stages=["vocoder"],
        threads=1,
    )
    assert [v.name for v in report.variants] == ["ort", "torch-chunked"]
    (failed,) = report.failed
    assert failed["name"] == "torch" and failed["stage"] == "vocoder"
    assert failed["error"] == "RuntimeError: PyTorch is checking whether allow_tf32_new is enabled"


def test_bench_reports_shapes_padding_and_the_cold_pass_of_the_gpu_profile(
    bundled_voice: Voice,
) -> None:
    pytest.importorskip("torch")
    report = run_bench(
        bundled_voice,
        device="cpu",
        seconds=20,
        variants=["torch"],
        threads=1,
        profile="gpu-large",
    )
    assert report.profile == "gpu-large" and not report.failed
    for v in report.variants:
        assert v.cold_seconds is not None and v.cold_seconds > 0
        assert v.cold_x_realtime is not None and v.cold_x_realtime > 0
        shapes = v.graphs_by_stage or {}
        assert v.graphs == sum(shapes.values())
        assert 0 < shapes["dec_rows"] <= 8 and shapes.get("flow_rows", 0) <= 8, shapes
        pad = v.padding_efficiency or {}
        assert pad["vocoder"] >= 0.85, pad
        if v.stage == "pipeline":
            assert pad["flow"] >= 0.85 and pad["acoustic"] >= 0.85, pad
            assert pad["durations"] >= 0.85, pad  # was 0.849 with quarter-wide lone rows
        assert v.snr_db is not None and v.snr_db >= 40


@pytest.mark.parametrize("seconds", [10, 20, 60])
def test_the_gpu_profile_pads_the_bench_text_little_in_the_duration_stage(
    bundled_voice: Voice, seconds: float
) -> None:
    # The sentences and call sizes bench gives the torch variant under gpu-large, through
    # the backend's own duration batching (run_bench's full pass is the slow test above).
    pytest.importorskip("torch")
    from voicekit.backends.base import create_backend
    from voicekit.settings import SynthSettings

    tuned = bench._profile_settings("gpu-large")
    settings = SynthSettings(device="cpu", backend="torch", threads=1, chunk_frames=0)
    backend = create_backend("torch", bundled_voice, settings.replace(**tuned).validate(), "cpu")
    try:
        _, utts = bench_utterances(bundled_voice, seconds)
        useful = computed = 0
        for call in bench._calls(backend, utts):
            lengths = [len(u.ids) for u in call]
            batches = backend.duration_batches(lengths)  # type: ignore[attr-defined]
            useful += sum(lengths)
            computed += sum(len(rows) * width for width, rows in batches)
            assert {(len(r), w) for w, r in batches} <= set(backend.id_row_shapes())  # type: ignore[attr-defined]
    finally:
        backend.close()
    assert useful / computed >= 0.85, (seconds, useful / computed)


def test_decoder_precision_is_measured_on_the_cpu(bundled_voice: Voice) -> None:
    pytest.importorskip("torch")
    from voicekit.backends.ort import OrtLatents

    rng = np.random.default_rng(5)
    latents = [OrtLatents(rng.standard_normal((192, n), dtype=np.float32)) for n in (80, 90)]
    snr = bench.decoder_precision_snr(bundled_voice, latents, max_frames=120)
    # Both formats clear the 20 dB floor the bf16 tests hold; fp16 keeps 3 more
    # mantissa bits than bf16, which shows as more than 10 dB.
    assert snr["bf16"] >= 20 and snr["fp16"] >= snr["bf16"] + 10, snr
