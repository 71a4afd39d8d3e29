"""``voicekit bench`` through the real command line."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from voicekit.cli.main import app

REQUIRED = {"name", "stage", "x_realtime", "speedup", "snr_db", "max_abs_diff", "peak_mem_mb"}


@pytest.mark.slow  # a real bench: 38 s on the shared 2-core machine (--durations)
def test_bench_json_schema_and_real_numbers() -> None:
    pytest.importorskip("torch")
    result = CliRunner().invoke(
        app, ["bench", "--seconds", "1", "--json", "--variants", "ort,torch", "--threads", "1"]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data["device"], str) and data["device"].startswith("cpu")
    rows = data["variants"]
    assert {(r["name"], r["stage"]) for r in rows} == {
        (n, s) for n in ("ort", "torch") for s in ("vocoder", "pipeline")
    }
    baseline = {r["stage"]: r["x_realtime"] for r in rows if r["name"] == "ort"}
    for row in rows:
        assert set(row) >= REQUIRED
        for key in ("x_realtime", "speedup", "peak_mem_mb"):
            assert isinstance(row[key], float | int) and math.isfinite(row[key]) and row[key] > 0
        assert row["speedup"] == pytest.approx(row["x_realtime"] / baseline[row["stage"]], abs=2e-3)
        if row["name"] != "ort":  # ort is the reference itself
            assert math.isfinite(row["snr_db"]) and row["snr_db"] >= 40
            assert math.isfinite(row["max_abs_diff"]) and row["max_abs_diff"] > 0


def test_bench_table_for_one_stage() -> None:
    pytest.importorskip("torch")
    result = CliRunner().invoke(
        app,
        ["bench", "--seconds", "1", "--stage", "vocoder", "--variants", "torch", "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    assert "voicekit bench" in result.stdout and "torch" in result.stdout
    assert "pipeline" not in result.stdout.split("voicekit bench", 1)[1].split("\n\n")[0]


def test_bench_table_names_whole_variants_and_ends_with_a_conclusion() -> None:
    """Regression: names were cut (torch-ch…), headers wrapped, "894 rss", no conclusion."""
    pytest.importorskip("torch")
    result = CliRunner(env={"COLUMNS": "100"}).invoke(
        app,
        ["bench", "--seconds", "1", "--stage", "vocoder", "--variants", "ort,torch-chunked",
         "--threads", "1"],
    )
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "variant" in line)
    for column in ("stage", "× real time", "vs ort", "SNR dB", "max |diff|", "peak RSS MB"):
        assert column in header, header
    row = next(line for line in lines if "torch-chunked" in line)
    assert "rss" not in row
    last = lines[-1]
    assert last.startswith("fastest here: ") and "x real time" in last, last
    assert "`synth --device auto` uses ort on cpu" in last
    assert "estimate: about" in result.stderr and "[2/2] vocoder: torch-chunked" in result.stderr


def test_bench_rejects_an_unknown_variant() -> None:
    result = CliRunner().invoke(app, ["bench", "--variants", "ort,warp-drive"])
    assert result.exit_code == 2
    assert "unknown variant" in result.stderr and "Traceback" not in result.output


@pytest.mark.slow  # a whole synth run of a few seconds of the bench text
def test_bench_pipeline_reports_where_a_real_runs_time_goes() -> None:
    result = CliRunner().invoke(
        app, ["bench", "--pipeline", "--seconds", "8", "--device", "cpu", "--json"]
    )
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)["pipeline"]
    assert found["format"] == "m4b" and found["audio_seconds"] > 4
    stages = found["stages"]
    assert {"text", "phonemize", "acoustic", "vocoder", "checkpoint", "encode", "join"} <= set(
        stages
    )
    assert sum(stages.values()) == pytest.approx(found["wall_seconds"], rel=0.1)
    assert found["stage_busy"]["vocoder"] > 0 and found["stage_busy"]["join"] > 0
    speed = found["audio_seconds"] / found["wall_seconds"]
    assert found["x_realtime"] == pytest.approx(speed, rel=0.01)


def test_bench_pipeline_rejects_an_unknown_format() -> None:
    result = CliRunner().invoke(app, ["bench", "--pipeline", "--format", "aiff"])
    assert result.exit_code == 2 and "unknown format" in result.output
