"""doctor's checks against fakes (driver missing, library missing, two GPUs) and for real."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.gpu_fakes import FakeGpu, install_onnxruntime, install_pynvml, install_torch
from voicekit.diagnostics import checks as doctor_base
from voicekit.diagnostics import checks_gpu as doctor_gpu
from voicekit.diagnostics import doctor
from voicekit.diagnostics.checks import Check
from voicekit.system import devices, ortcuda

GPU_ORT = ["CUDAExecutionProvider", "CPUExecutionProvider"]


@pytest.fixture
def no_pci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor_base, "nvidia_pci_devices", lambda: 0)
    monkeypatch.setattr(devices, "nvidia_pci_devices", lambda: 0)


# ------------------------------------------------------------------ ortcuda helpers
def test_capture_fd2_sees_native_writes() -> None:
    with ortcuda.capture_fd2() as out:
        os.write(2, b"from C++: libcudnn.so.9: cannot open shared object file\n")
    assert out.text == "from C++: libcudnn.so.9: cannot open shared object file\n"


@pytest.mark.parametrize(
    ("log", "names"),
    [
        (
            "Failed to load library libonnxruntime_providers_cuda.so with error: "
            "libcublasLt.so.12: cannot open shared object file: No such file or directory",
            ["libcublasLt.so.12"],
        ),
        (
            "libcudnn.so.9: cannot open shared object file\n"
            "libcudnn.so.9: cannot open shared object file",
            ["libcudnn.so.9"],
        ),
        (
            "Failed to load library libonnxruntime_providers_cuda.so with error: "
            "libonnxruntime_providers_cuda.so: cannot open shared object file",
            ["libonnxruntime_providers_cuda.so"],
        ),
        (
            'LoadLibrary failed with error 126 "" when trying to load '
            "onnxruntime_providers_cuda.dll; cudnn64_9.dll",
            ["cudnn64_9.dll"],
        ),
        ("nothing useful", []),
    ],
)
def test_missing_libraries(log: str, names: list[str]) -> None:
    assert ortcuda.missing_libraries(log) == names


def test_probe_names_the_library_the_loader_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    ort = install_onnxruntime(monkeypatch, providers=GPU_ORT, missing_lib="libcudnn.so.9")
    probe = ortcuda.probe_ort_cuda(0)
    assert not probe.ok
    assert probe.providers == ["CPUExecutionProvider"]
    assert probe.missing == ["libcudnn.so.9"]
    assert "Require cuDNN 9.* and CUDA 12.*" in probe.error
    assert ort.preloaded == [True]  # the wheels' libraries were offered first


def test_probe_succeeds_when_cuda_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    install_onnxruntime(monkeypatch, providers=GPU_ORT)
    probe = ortcuda.probe_ort_cuda(0)
    assert (probe.ok, probe.missing, probe.error) == (True, [], "")


def test_cuda_library_fix_names_extras_and_version_mismatch() -> None:
    fix = ortcuda.cuda_library_fix(["libcublasLt.so.11"], "12.8")
    assert "onnxruntime-gpu[cuda,cudnn]" in fix
    assert "preload_dlls" in fix
    assert "built for CUDA 12.8; the libraries must be CUDA 12.x" in fix
    assert "cuDNN 9" in ortcuda.cuda_library_fix(["libcudnn.so.9"], "12.8")
    assert "NVIDIA driver" in ortcuda.cuda_library_fix(["libcuda.so.1"], "12.8")


# ------------------------------------------------------------------ onnxruntime checks
def _shadowed(monkeypatch: pytest.MonkeyPatch) -> None:
    install_onnxruntime(
        monkeypatch,
        providers=["CPUExecutionProvider"],
        package="onnxruntime",
        version="1.22.0",
        distributions={"onnxruntime": "1.22.0", "onnxruntime-gpu": "1.22.0"},
    )


def test_shadowed_onnxruntime_gpu_is_detected_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    install_pynvml(monkeypatch, [FakeGpu()])
    _shadowed(monkeypatch)
    check = doctor.check_onnxruntime_build()
    assert check.status == "warn"
    assert "onnxruntime-gpu 1.22.0" in check.detail
    assert "overwrote onnxruntime-gpu" in check.detail
    assert check.fix == "pip install --force-reinstall --no-deps onnxruntime-gpu"


def test_shadowed_gpu_build_is_no_warning_without_a_gpu(
    monkeypatch: pytest.MonkeyPatch, no_pci: None
) -> None:
    """Regression: a CPU-only install (which pulled in onnxruntime-gpu) was warned about it."""
    install_pynvml(monkeypatch, None)
    _shadowed(monkeypatch)
    check = doctor.check_onnxruntime_build()
    assert check.status == "ok"
    assert check.fix is None
    assert "no NVIDIA GPU here" in check.detail


def test_readme_gives_the_same_gpu_fix_as_doctor() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    assert ortcuda.SHADOW_FIX in readme


def test_gpu_build_is_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu()])
    install_onnxruntime(monkeypatch, providers=GPU_ORT, cuda_version="12.8")
    check = doctor.check_onnxruntime_build()
    assert check.status == "ok"
    assert "from the onnxruntime-gpu package built for CUDA 12.8" in check.detail
    assert "providers: CUDA, CPU" in check.detail


def test_onnxruntime_cuda_session_missing_library(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu()])
    install_onnxruntime(monkeypatch, providers=GPU_ORT, missing_lib="libcublasLt.so.12")
    check = doctor.check_onnxruntime_cuda()
    assert check.status == "warn"
    assert "missing libcublasLt.so.12" in check.detail
    assert check.fix is not None and "onnxruntime-gpu[cuda,cudnn]" in check.fix


def test_onnxruntime_cuda_session_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu()])
    install_onnxruntime(monkeypatch, providers=GPU_ORT)
    check = doctor.check_onnxruntime_cuda()
    assert check.status == "ok"
    assert "ran on cuda:0" in check.detail


# ------------------------------------------------------------------ torch
def test_torch_with_two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu(), FakeGpu()])
    install_torch(monkeypatch, devices=[("H100", (9, 0)), ("L4", (8, 9))], cudnn=90100)
    check = doctor.check_torch()
    assert check.status == "ok"
    assert "torch 2.6.0 (CUDA 12.6, cuDNN 9.1.0)" in check.detail
    assert "cuda:0 H100 (sm_90); cuda:1 L4 (sm_89)" in check.detail


def test_torch_without_kernels_for_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu(), FakeGpu()])
    install_torch(
        monkeypatch, devices=[("H100", (9, 0)), ("RTX 5090", (12, 0))], arch=["sm_80", "sm_90"]
    )
    check = doctor.check_torch()
    assert check.status == "warn"
    assert "no kernels for cuda:1 in this build (sm_80, sm_90)" in check.detail


def test_cpu_torch_on_a_gpu_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu()])
    install_torch(monkeypatch, cuda=None, version="2.6.0+cpu")
    check = doctor.check_torch()
    assert check.status == "warn"
    assert "CPU-only build" in check.detail
    assert check.fix is not None and "download.pytorch.org/whl/cu" in check.fix


def test_torch_missing_is_fine_without_gpu(monkeypatch: pytest.MonkeyPatch, no_pci: None) -> None:
    install_pynvml(monkeypatch, None)
    monkeypatch.setattr(devices, "torch_installed", lambda: False)
    check = doctor.check_torch()
    assert (check.status, check.fix) == ("ok", None)
    install_pynvml(monkeypatch, [FakeGpu()])
    assert doctor.check_torch().fix == "pip install 'voicekit[torch]'"


def test_cuda_graph_failure_is_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu()])
    install_torch(monkeypatch, devices=[("H100", (9, 0))])

    def broken(torch: object, index: int = 0) -> None:
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(doctor_gpu, "cuda_graph_capture", broken)
    check = doctor.check_torch_cuda_graphs()
    assert check.status == "warn"
    assert "operation not permitted" in check.detail
    assert check.fix == "run with --no-cuda-graphs (slower, same audio)"
    monkeypatch.setattr(doctor_gpu, "cuda_graph_capture", lambda torch, index=0: None)
    assert doctor.check_torch_cuda_graphs().status == "ok"


# ------------------------------------------------------------------ driver
def test_driver_too_old_for_the_builds(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(
        monkeypatch,
        [FakeGpu(name="A10", total_mb=23028), FakeGpu(name="A10")],
        driver="470.82.01",
        cuda=11040,
    )
    install_torch(monkeypatch, cuda="12.6", devices=[])
    install_onnxruntime(monkeypatch, providers=GPU_ORT, cuda_version="12.8")
    check = doctor.check_driver()
    assert check.status == "warn"
    assert "driver 470.82.01 (CUDA 11.4): A10 22 GB; A10 24 GB" in check.detail
    assert "torch needs CUDA 12.6" in check.detail
    assert "onnxruntime needs CUDA 12.8" in check.detail
    assert check.fix is not None and ">= 525.60.13 (CUDA 12)" in check.fix


def test_driver_new_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, [FakeGpu()], driver="570.86.10", cuda=12080)
    install_torch(monkeypatch, cuda="12.6", devices=[])
    install_onnxruntime(monkeypatch, providers=GPU_ORT, cuda_version="12.8")
    check = doctor.check_driver()
    assert check.status == "ok"
    assert "supports torch built for CUDA 12.6, onnxruntime built for CUDA 12.8" in check.detail


def test_gpu_without_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    install_pynvml(monkeypatch, None)
    monkeypatch.setattr(doctor_base, "nvidia_pci_devices", lambda: 1)
    check = doctor.check_driver()
    assert check.status == "warn"
    assert "1 NVIDIA GPU(s) on the PCI bus but no working driver" in check.detail
    assert check.fix is not None and "install the NVIDIA driver" in check.fix


def test_no_gpu_at_all(monkeypatch: pytest.MonkeyPatch, no_pci: None) -> None:
    install_pynvml(monkeypatch, None)
    assert doctor.check_driver().status == "ok"
    device = doctor.check_device()
    assert device.status == "ok"  # a fact, said once here, not a problem to fix
    assert device.detail.startswith("no NVIDIA GPU found: --device auto runs on the CPU")
    assert device.fix is None


def test_a_run_looks_for_the_gpu_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: each GPU check took its own full NVML snapshot (processes, power, ...)."""
    nv = install_pynvml(monkeypatch, [FakeGpu()])
    install_torch(monkeypatch, devices=[("H100", (9, 0))])
    install_onnxruntime(monkeypatch, providers=GPU_ORT)
    monkeypatch.setattr(doctor_gpu, "cuda_graph_capture", lambda torch, index=0: None)
    snapshots = []
    real = doctor_base.nvml_driver
    monkeypatch.setattr(doctor_base, "nvml_driver", lambda: snapshots.append(1) or real())
    gpu_checks = [
        doctor.check_onnxruntime_build,
        doctor.check_onnxruntime_cuda,
        doctor.check_torch,
        doctor.check_torch_cuda_graphs,
        doctor.check_driver,
        doctor.check_device,
    ]
    checks = doctor.run_checks(gpu_checks)
    assert [c.status for c in checks] == ["ok"] * 6, checks
    assert snapshots == [1]  # only the driver check needs the full snapshot
    # one look for the checks, one for choose_device's GPU list, the driver's snapshot
    assert nv.state["inits"] == 3


# ------------------------------------------------------------------ ffmpeg, folders, wrapper
def test_ffmpeg_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "ffmpeg_binaries", lambda: ([], ""))
    check = doctor.check_ffmpeg()
    assert (check.status, check.detail) == ("warn", "no ffmpeg: only wav output works")


@pytest.fixture
def ffmpeg_5_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "ffmpeg_version", lambda binary: "5.1.9-0+deb12u1")


def test_ffmpeg_without_mp3(monkeypatch: pytest.MonkeyPatch, ffmpeg_5_1: None) -> None:
    monkeypatch.setattr(doctor, "ffmpeg_binaries", lambda: ([("/usr/bin/ffmpeg", "system")], ""))
    monkeypatch.setattr(doctor, "ffmpeg_encoders", lambda b: {"aac", "libopus", "flac"})
    check = doctor.check_ffmpeg()
    assert check.status == "warn"
    assert "missing libmp3lame (mp3 output will fail)" in check.detail


def test_native_opus_encoder_does_not_count(
    monkeypatch: pytest.MonkeyPatch, ffmpeg_5_1: None
) -> None:
    """Regression: doctor accepted ffmpeg's native 'opus', but encode_opus asks for libopus."""
    monkeypatch.setattr(doctor, "ffmpeg_binaries", lambda: ([("/usr/bin/ffmpeg", "system")], ""))
    monkeypatch.setattr(doctor, "ffmpeg_encoders", lambda b: {"aac", "libmp3lame", "opus", "flac"})
    check = doctor.check_ffmpeg()
    assert check.status == "warn"
    assert "missing libopus (opus output will fail)" in check.detail


def test_ffmpeg_encoders_count_across_binaries(
    monkeypatch: pytest.MonkeyPatch, ffmpeg_5_1: None
) -> None:
    # a system ffmpeg without lame is fine when imageio's binary (tried next) has it
    binaries = [("/usr/bin/ffmpeg", "system"), ("/x/ffmpeg-static", "imageio-ffmpeg")]
    monkeypatch.setattr(doctor, "ffmpeg_binaries", lambda: (binaries, ""))
    encoders = {
        "/usr/bin/ffmpeg": {"aac", "libopus", "flac"},
        "/x/ffmpeg-static": {"aac", "libmp3lame", "libopus", "flac"},
    }
    monkeypatch.setattr(doctor, "ffmpeg_encoders", encoders.__getitem__)
    check = doctor.check_ffmpeg()
    assert check.status == "ok", check.detail
    assert check.detail.startswith(
        "/usr/bin/ffmpeg (system, version 5.1.9-0+deb12u1), then /x/ffmpeg-static"
    )


def test_ffmpeg_older_than_tested_is_a_warning_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    binaries = [("/usr/bin/ffmpeg", "system"), ("/x/ffmpeg-static", "imageio-ffmpeg")]
    monkeypatch.setattr(doctor, "ffmpeg_binaries", lambda: (binaries, ""))
    all_four = {"aac", "libmp3lame", "libopus", "flac"}
    monkeypatch.setattr(doctor, "ffmpeg_encoders", lambda b: all_four)
    versions = {"/usr/bin/ffmpeg": "4.1.11-0+deb10u1", "/x/ffmpeg-static": "n9.0.2-17-g2a571b6068"}
    monkeypatch.setattr(doctor, "ffmpeg_version", versions.__getitem__)
    check = doctor.check_ffmpeg()
    assert check.status == "warn"
    assert "version 4.1.11-0+deb10u1" in check.detail and "version n9.0.2" in check.detail
    assert "older than 4.2, the oldest voicekit is tested with: /usr/bin/ffmpeg" in check.detail
    assert check.fix is not None and "ffmpeg 4.2 or newer" in check.fix


@pytest.mark.parametrize(
    ("version", "number"),
    [("5.1.9-0+deb12u1", (5, 1)), ("n9.0.2-17-g2a571b6068", (9, 0)), ("4.2.2-static", (4, 2)),
     ("N-112345-gdeadbeef", None), (None, None)],
)
def test_ffmpeg_version_numbers(version: str | None, number: tuple[int, int] | None) -> None:
    assert doctor.version_number(version) == number


def test_ffmpeg_for_real() -> None:
    check = doctor.check_ffmpeg()
    binaries, _ = doctor.ffmpeg_binaries()
    assert binaries  # imageio-ffmpeg is a dependency
    assert check.status == "ok", check.detail
    assert "aac, libmp3lame, libopus, flac" in check.detail
    for binary, _ in binaries:  # each binary doctor judges, with the version it found
        assert f"{binary} (" in check.detail
        assert doctor.ffmpeg_version(binary) is not None
    assert check.detail.count(", version ") == len(binaries)


def test_unwritable_cache_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("VOICEKIT_CACHE", str(blocker / "cache"))
    check = doctor.check_cache()
    assert check.status == "fail"
    assert check.fix == "set VOICEKIT_CACHE to a writable folder"


def test_a_crashing_check_reports_instead_of_raising() -> None:
    @doctor_base.guarded("boom", critical=True)
    def critical() -> Check:
        raise KeyError("x")

    @doctor_base.guarded("meh")
    def optional() -> Check:
        raise OSError("y")

    assert critical().status == "fail"
    assert optional().detail == "the check itself failed: OSError: y"
    assert doctor.overall_ok([optional(), Check("a", "warn", "")])
    assert not doctor.overall_ok([critical()])


def test_preload_output_stays_off_stdout(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """onnxruntime.preload_dlls() prints its warnings; doctor --json owns stdout."""
    ort = install_onnxruntime(monkeypatch, providers=GPU_ORT)
    ort.preload_dlls = lambda: print("WARNING: onnxruntime-gpu is built with CUDA 11.8")
    assert ortcuda.preload_cuda_libraries() == "WARNING: onnxruntime-gpu is built with CUDA 11.8"
    assert capsys.readouterr().out == ""


def test_missing_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    real = doctor_base.dist
    monkeypatch.setattr(doctor_base, "dist", lambda n: None if n == "ebooklib" else real(n))
    check = doctor.check_packages()
    assert (check.status, check.fix) == ("warn", "pip install ebooklib (or reinstall voicekit)")
    assert "ebooklib (EPUB input)" in check.detail
    monkeypatch.setattr(doctor_base, "dist", lambda n: None if n == "num2words" else real(n))
    assert doctor.check_packages().status == "fail"
