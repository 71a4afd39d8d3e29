"""Device choice: auto with 0, 1 and 2 GPUs, explicit devices, CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.gpu_fakes import FakeGpu, install_onnxruntime, install_pynvml, install_torch
from voicekit.errors import DependencyError, DeviceError
from voicekit.system import devices
from voicekit.system.devices import choose_device
from voicekit.system.nvml import GpuInfo, visible


@pytest.fixture
def no_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "torch_installed", lambda: False)


def gpus(*free: float) -> list[FakeGpu]:
    return [
        FakeGpu(name=f"GPU{i}", total_mb=24000, used_mb=24000 - f, uuid=f"GPU-{i}{i}{i}")
        for i, f in enumerate(free)
    ]


def test_visible_follows_cuda_visible_devices() -> None:
    all_gpus = [GpuInfo(i, f"g{i}", 100, 50, i, f"GPU-{i}abc") for i in range(3)]
    assert visible(all_gpus, None) == all_gpus
    assert visible(all_gpus, "") == []
    only = visible(all_gpus, "2")
    assert [(g.index, g.nvml, g.name) for g in only] == [(0, 2, "g2")]
    assert [g.name for g in visible(all_gpus, "GPU-1,0")] == ["g1", "g0"]
    # CUDA stops at the first entry that names no GPU
    assert [g.name for g in visible(all_gpus, "1,7,0")] == ["g1"]


def test_nvml_gpus_without_driver_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, None)
    assert devices.nvml_gpus() == []


def test_nvml_gpus_reads_memory_and_closes_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    nv = install_pynvml(monkeypatch, gpus(4000, 20000))
    found = devices.nvml_gpus()
    assert [(g.index, g.name, round(g.free_mb)) for g in found] == [
        (0, "GPU0", 4000),
        (1, "GPU1", 20000),
    ]
    assert nv.state["open"] == 0


def test_auto_without_gpu_runs_on_cpu_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: every run printed "no NVIDIA GPU found"; doctor says it once instead."""
    install_pynvml(monkeypatch, None)
    monkeypatch.setattr(devices, "nvidia_pci_devices", lambda: 0)
    choice = choose_device("auto", "auto")
    assert (choice.device, choice.backend) == ("cpu", "ort")
    assert choice.notes == []


def test_auto_warns_when_a_gpu_has_no_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, None)
    monkeypatch.setattr(devices, "nvidia_pci_devices", lambda: 1)
    choice = choose_device("auto", "auto")
    assert (choice.device, choice.backend) == ("cpu", "ort")
    assert len(choice.notes) == 1
    assert choice.notes[0].startswith("warning: 1 NVIDIA GPU(s) on the PCI bus but no working")


def test_auto_with_one_gpu_uses_it(monkeypatch: pytest.MonkeyPatch, no_torch: None) -> None:
    install_pynvml(monkeypatch, gpus(20000))
    install_onnxruntime(monkeypatch, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    choice = choose_device("auto", "auto")
    assert (choice.device, choice.backend) == ("cuda:0", "ort")
    assert "using cuda:0 (GPU0, 20,000 MB free) with ort" in choice.notes[0]
    assert any("torch is not installed" in n for n in choice.notes)


def test_auto_with_two_gpus_takes_the_most_free_memory(
    monkeypatch: pytest.MonkeyPatch, no_torch: None
) -> None:
    install_pynvml(monkeypatch, gpus(3000, 21000))
    install_onnxruntime(monkeypatch, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert choose_device("auto", "auto").device == "cuda:1"
    assert choose_device("cuda", "ort").device == "cuda:1"
    assert choose_device("cuda:0", "ort").device == "cuda:0"


def test_auto_prefers_torch_when_it_can_use_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, gpus(20000))
    install_torch(monkeypatch, cuda="12.6", devices=[("GPU0", (8, 9))])
    choice = choose_device("auto", "auto")
    assert (choice.device, choice.backend) == ("cuda:0", "torch")


def test_auto_falls_back_to_cpu_with_a_visible_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, gpus(20000))
    install_torch(monkeypatch, cuda=None, version="2.6.0+cpu")
    install_onnxruntime(
        monkeypatch,
        providers=["CUDAExecutionProvider", "CPUExecutionProvider"],
        missing_lib="libcublasLt.so.12",
    )
    choice = choose_device("auto", "auto")
    assert (choice.device, choice.backend) == ("cpu", "ort")
    warning = choice.notes[-1]
    assert warning.startswith("warning: an NVIDIA GPU is present but CUDA cannot start")
    assert "torch 2.6.0+cpu is a CPU-only build" in warning
    assert "libcublasLt.so.12" in warning
    assert "voicekit doctor" in warning


def test_shadowed_onnxruntime_is_named(monkeypatch: pytest.MonkeyPatch, no_torch: None) -> None:
    install_pynvml(monkeypatch, gpus(20000))
    install_onnxruntime(
        monkeypatch,
        providers=["CPUExecutionProvider"],
        package="onnxruntime",
        distributions={"onnxruntime": "1.22.0", "onnxruntime-gpu": "1.22.0"},
    )
    ok, why = devices.cuda_usable("ort")
    assert not ok
    assert "overwrote onnxruntime-gpu" in why


def test_explicit_cuda_without_gpu_is_a_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, None)
    with pytest.raises(DeviceError) as info:
        choose_device("cuda", "auto")
    assert info.value.exit_code == 5
    assert "no NVIDIA GPU or driver found" in info.value.message


def test_explicit_index_beyond_the_gpus_is_refused(
    monkeypatch: pytest.MonkeyPatch, no_torch: None
) -> None:
    install_pynvml(monkeypatch, gpus(1000, 2000))
    install_onnxruntime(monkeypatch, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    with pytest.raises(DeviceError, match=r"only 2 CUDA device\(s\) \(cuda:0 to cuda:1\)"):
        choose_device("cuda:2", "ort")


def test_torch_backend_without_torch_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, no_torch: None
) -> None:
    with pytest.raises(DependencyError) as info:
        choose_device("cpu", "torch")
    assert info.value.hint == "pip install 'voicekit[torch]'"


def test_openvino_backend_without_openvino_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices, "openvino_installed", lambda: False)
    with pytest.raises(DependencyError) as info:
        choose_device("cpu", "openvino")
    assert info.value.exit_code == 6
    assert info.value.hint == "pip install 'voicekit[openvino]'"


def test_openvino_backend_runs_on_the_cpu_even_with_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "openvino_installed", lambda: True)
    install_pynvml(monkeypatch, gpus(20000))
    assert choose_device("auto", "openvino") == devices.DeviceChoice("cpu", "openvino", [])
    assert choose_device("cpu", "openvino") == devices.DeviceChoice("cpu", "openvino", [])
    with pytest.raises(DeviceError, match="--device cuda:0: the openvino backend runs on the CPU"):
        choose_device("cuda:0", "openvino")


def test_auto_keeps_onnxruntime_on_the_cpu_beside_openvino(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(devices, "openvino_installed", lambda: True)
    install_pynvml(monkeypatch, None)
    assert choose_device("auto", "auto").backend == "ort"
    assert choose_device("cpu", "auto").backend == "ort"


def test_synth_with_openvino_missing_exits_6_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicekit.cli.main import app

    monkeypatch.setattr(devices, "openvino_installed", lambda: False)
    book = tmp_path / "x.txt"
    book.write_text("A short sentence to read.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["synth", "x.txt", "--backend", "openvino"])
    assert result.exit_code == 6, result.output
    assert result.output.strip() == (
        "error: --backend openvino needs OpenVINO, which is not installed "
        "(pip install 'voicekit[openvino]')"
    )
    assert not (tmp_path / "x.wav").exists()


def test_cpu_is_always_possible(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, gpus(20000))
    assert choose_device("cpu", "auto") == devices.DeviceChoice("cpu", "ort", [])


def test_torch_without_kernels_for_the_gpu_is_not_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, gpus(20000))
    install_torch(monkeypatch, devices=[("RTX 5090", (12, 0))], arch=["sm_80", "sm_90"])
    ok, why = devices.cuda_usable("torch")
    assert not ok
    assert "compute capability 12.0" in why


def test_torch_is_judged_on_every_gpu_not_just_cuda_0(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: only cuda:0 was checked, though auto may take the other GPU."""
    install_pynvml(monkeypatch, gpus(2000, 20000))
    install_torch(
        monkeypatch, devices=[("H100", (9, 0)), ("RTX 5090", (12, 0))], arch=["sm_80", "sm_90"]
    )
    ok, why = devices.cuda_usable("torch")
    assert not ok
    assert "no kernels for cuda:1 (compute capability 12.0)" in why


def test_onnxruntime_that_cannot_be_imported_is_named(
    monkeypatch: pytest.MonkeyPatch, no_torch: None
) -> None:
    """A broken native library raises OSError on import, not ImportError."""
    from voicekit.system import ortcuda

    install_pynvml(monkeypatch, gpus(20000))
    broken = ortcuda.OrtBuild(None, None, None, [], {}, import_error="OSError: libfoo.so")
    monkeypatch.setattr(ortcuda, "ort_build", lambda: broken)
    assert devices.cuda_usable("ort") == (
        False,
        "onnxruntime cannot be imported (OSError: libfoo.so)",
    )


def test_fake_probe_results_do_not_outlive_the_fakes() -> None:
    from voicekit.system import ortcuda

    real = ortcuda.probe_ort_cuda_cached
    cached = real.cache_info().currsize
    with pytest.MonkeyPatch.context() as mp:
        install_pynvml(mp, gpus(20000))
        install_onnxruntime(mp, providers=["CUDAExecutionProvider"], missing_lib="libcudnn.so.9")
        assert not devices.cuda_usable("ort")[0]
    assert ortcuda.probe_ort_cuda_cached is real
    assert real.cache_info().currsize == cached


@pytest.mark.parametrize(
    ("arch", "cap", "ok"),
    [
        (["sm_80", "sm_90"], (8, 6), True),  # sm_80 SASS runs on sm_86
        (["sm_86"], (8, 0), False),  # but not the other way round
        (["sm_90a"], (9, 0), True),
        (["sm_80", "compute_80"], (12, 0), True),  # PTX is JIT-compiled for newer GPUs
        (["sm_80", "sm_90"], (12, 0), False),
        ([], (7, 5), True),
    ],
)
def test_torch_arch_supported(arch: list[str], cap: tuple[int, int], ok: bool) -> None:
    assert devices.torch_arch_supported(arch, cap) is ok


def test_cuda_index_follows_cuda_visible_devices_not_nvml_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: the first sketch read cuda:N's memory from NVML's GPU N."""
    install_pynvml(monkeypatch, [FakeGpu(name="A", used_mb=100), FakeGpu(name="B", used_mb=900)])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    probe = devices.gpu_probe_for("cuda:0")
    assert probe is not None
    used, total = probe()
    assert (round(used), round(total)) == (900, 24564)
    assert devices.gpu_probe_for("cpu") is None
    assert [g.name for g in devices.nvml_gpus()] == ["B"]


def test_synth_with_cuda_but_no_cuda_exits_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicekit.cli.main import app

    install_pynvml(monkeypatch, None)
    book = tmp_path / "x.txt"
    book.write_text("A short sentence to read.\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["synth", "x.txt", "--device", "cuda"])
    assert result.exit_code == 5, result.output
    assert "--device cuda: CUDA is not usable here (no NVIDIA GPU or driver found)" in (
        result.output
    )
    assert "Traceback" not in result.output
    assert not (tmp_path / "x.wav").exists()
