"""``voicekit gpu``: no GPU (for real and faked), two fake GPUs, --json, --watch --count."""

from __future__ import annotations

import json
import os

import pytest
from typer.testing import CliRunner

from tests.gpu_fakes import FakeGpu, install_pynvml
from voicekit.cli.main import app
from voicekit.system.nvml import nvml_all_gpus

runner = CliRunner()


def test_gpu_for_real_here() -> None:
    if nvml_all_gpus():
        pytest.skip("this machine has an NVIDIA GPU")
    result = runner.invoke(app, ["gpu"])
    assert result.exit_code == 0, result.output
    assert "no NVIDIA GPU" in result.stdout
    assert "RAM " in result.stdout
    data = json.loads(runner.invoke(app, ["gpu", "--json"]).stdout)
    assert data["gpus"] == []
    assert data["system"]["ram_total_mb"] > 0


def test_no_driver_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, None)
    result = runner.invoke(app, ["gpu"])
    assert result.exit_code == 0
    assert "no NVIDIA GPU: no NVIDIA driver found" in result.stdout


def test_two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(
        monkeypatch,
        [
            FakeGpu(name="RTX 4090", used_mb=23000, processes=[(os.getpid(), 1536 * 2**20)]),
            FakeGpu(name="RTX 3060", total_mb=12288, used_mb=512),
        ],
    )
    result = runner.invoke(app, ["gpu"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "NVIDIA driver 550.54.15, CUDA 12.4" in out
    assert "RTX 4090" in out and "RTX 3060" in out
    assert "23,000 / 24,564" in out
    assert f"{os.getpid()} " in out and "1,536 MB" in out
    data = json.loads(runner.invoke(app, ["gpu", "--json"]).stdout)
    assert [g["name"] for g in data["gpus"]] == ["RTX 4090", "RTX 3060"]
    assert data["gpus"][0]["processes"][0] == {
        "pid": os.getpid(),
        "name": data["gpus"][0]["processes"][0]["name"],
        "used_mb": 1536.0,
        "kind": "compute",
    }
    assert data["gpus"][1]["temperature_c"] == 55


def test_cuda_numbering_is_shown_where_it_differs(monkeypatch: pytest.MonkeyPatch) -> None:
    """NVML counts in PCI order; --device cuda:N counts what CUDA_VISIBLE_DEVICES shows."""
    install_pynvml(monkeypatch, [FakeGpu(name="RTX 4090"), FakeGpu(name="RTX 3060")])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    result = runner.invoke(app, ["gpu"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "0 (hidden)" in result.stdout and "1 (cuda:0)" in result.stdout
    data = json.loads(runner.invoke(app, ["gpu", "--json"]).stdout)
    assert [(g["index"], g["cuda_index"]) for g in data["gpus"]] == [(0, None), (1, 0)]


def test_watch_with_count_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu(name="L4")])
    result = runner.invoke(app, ["gpu", "--watch", "--count", "2", "--interval", "0.01"])
    assert result.exit_code == 0
    assert result.stdout.count("RAM ") == 2
    lines = (
        runner.invoke(app, ["gpu", "--json", "--count", "3", "--interval", "0.01"])
        .stdout.strip()
        .splitlines()
    )
    assert len(lines) == 3
    assert all(json.loads(line)["gpus"][0]["name"] == "L4" for line in lines)


@pytest.mark.parametrize("args", [["--interval", "0"], ["--count", "0"]])
def test_bad_watch_options(args: list[str]) -> None:
    result = runner.invoke(app, ["gpu", *args])
    assert result.exit_code == 2
    assert "error:" in result.output
