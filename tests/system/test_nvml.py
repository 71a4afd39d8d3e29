"""gpuinfo against a fake NVML: two GPUs, processes, unsupported counters, no driver."""

from __future__ import annotations

import os

import pytest

from tests.gpu_fakes import FakeGpu, install_pynvml
from voicekit.system import nvml as gpuinfo


def test_two_gpus_with_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    me = os.getpid()
    install_pynvml(
        monkeypatch,
        [
            FakeGpu(
                name="A100",
                total_mb=40960,
                used_mb=30000,
                processes=[(me, 2048 * 2**20), (999_999_999, None)],
            ),
            FakeGpu(name="T4", total_mb=15360, used_mb=0, power_mw=None, uuid="GPU-t4"),
        ],
        driver="550.54.15",
        cuda=12040,
    )
    snap = gpuinfo.snapshot(cpu_interval=None)
    assert (snap.driver, snap.cuda_driver, snap.note) == ("550.54.15", "12.4", "")
    a100, t4 = snap.gpus
    assert (a100.index, a100.name, a100.memory_used_mb, a100.memory_total_mb) == (
        0,
        "A100",
        30000,
        40960,
    )
    assert (a100.utilization_pct, a100.temperature_c, a100.power_w, a100.power_limit_w) == (
        37,
        55,
        120,
        450,
    )
    mine, gone = a100.processes
    assert (mine.pid, mine.used_mb) == (me, 2048)
    assert mine.name and mine.name != "?"
    assert (gone.name, gone.used_mb) == ("?", None)  # not ours to see, and no figure
    assert t4.power_w is None  # NotSupported is a missing counter, not an error
    assert t4.processes == []
    assert snap.system.ram_total_mb > 0
    assert snap.to_dict()["gpus"][0]["processes"][0]["pid"] == me


def test_no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, None)
    snap = gpuinfo.snapshot(cpu_interval=None)
    assert snap.gpus == []
    assert snap.driver is None
    assert snap.note == "no NVIDIA driver found: NVML Shared Library Not Found"
    assert snap.system.cpu_logical >= 1


def test_sentinel_memory_means_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu(processes=[(os.getpid(), 2**64 - 1)])])
    (gpu,) = gpuinfo.snapshot(cpu_interval=None).gpus
    assert gpu.processes[0].used_mb is None


def test_cuda_version_text() -> None:
    assert gpuinfo.cuda_version_text(12040) == "12.4"
    assert gpuinfo.cuda_version_text(11080) == "11.8"
    assert gpuinfo.cuda_version_text(None) is None


def test_watch_counts_and_keeps_one_session(monkeypatch: pytest.MonkeyPatch) -> None:
    nv = install_pynvml(monkeypatch, [FakeGpu()])
    pauses: list[float] = []
    snaps = list(gpuinfo.watch(0.5, count=3, sleep=pauses.append))
    assert len(snaps) == 3
    assert pauses == [0.5, 0.5]  # no pause before the first or after the last
    assert (nv.state["inits"], nv.state["open"]) == (1, 0)
