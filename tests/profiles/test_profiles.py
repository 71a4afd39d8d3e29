"""Profiles: precedence, device choice, save/load round trip, broken files."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest

from tests.gpu_fakes import FakeGpu, install_onnxruntime, install_pynvml, install_torch
from voicekit import profiles
from voicekit.errors import OutputError, ProfileError
from voicekit.settings import SynthSettings
from voicekit.system import devices
from voicekit.system.devices import GpuInfo


def write_user(name: str, text: str) -> Path:
    folder = profiles.user_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Set the GPUs this 'machine' has and whether CUDA works on them."""

    def set_up(gpus: list[GpuInfo], cuda: bool = True) -> None:
        monkeypatch.setattr(devices, "nvml_gpus", lambda: list(gpus))
        monkeypatch.setattr(devices, "cuda_usable", lambda backend, g=None: (cuda, ""))

    return set_up


def test_builtins_load_and_hold_only_what_differs_from_the_defaults() -> None:
    entries = {e.name: e for e in profiles.profile_entries()}
    assert {"cpu", "gpu-small", "gpu-large", "draft", "quality"} <= set(entries)
    defaults = asdict(SynthSettings())
    for entry in entries.values():
        profile = entry.profile
        assert profile is not None, entry.error
        assert profile.builtin and profile.description
        SynthSettings(**profile.values).validate()
        # a value equal to the default only hides a later change of that default
        same = {k: v for k, v in profile.values.items() if defaults[k] == v}
        assert same == {}, f"{entry.name} repeats defaults: {same}"


def test_precedence_flags_over_profile_over_defaults() -> None:
    settings = profiles.resolve_settings({"batch_size": 4}, "gpu-large").settings
    assert settings.batch_size == 4  # flag
    assert settings.chunk_frames == 2048  # profile
    assert settings.seed == SynthSettings().seed  # default


def test_no_profile_uses_the_device_profile(machine) -> None:  # type: ignore[no-untyped-def]
    machine([])
    assert profiles.device_profile() == "cpu"
    assert profiles.resolve_settings({}, None).settings.batch_size == 1
    machine([GpuInfo(0, "RTX 4090", 24564, 20000)])
    assert profiles.device_profile() == "gpu-large"
    assert profiles.resolve_settings({}, None).settings.batch_size == 64
    machine([GpuInfo(0, "RTX 3050", 6144, 5000)])
    assert profiles.device_profile() == "gpu-small"
    machine([GpuInfo(0, "small", 6144, 5000), GpuInfo(1, "big", 49152, 40000)])
    assert profiles.device_profile("auto") == "gpu-large"  # the GPU auto will pick
    assert profiles.device_profile("cuda:0") == "gpu-small"
    assert profiles.device_profile("cuda:7") == "cpu"  # absent: choose_device reports it


def test_device_flag_cpu_gets_the_cpu_profile_on_a_gpu_machine(machine) -> None:  # type: ignore[no-untyped-def]
    """Regression: the sketch picked gpu-large from the hardware even for --device cpu."""
    machine([GpuInfo(0, "RTX 4090", 24564, 20000)])
    settings = profiles.resolve_settings({"device": "cpu"}, None).settings
    cpu = profiles.load_profile("cpu").values
    assert settings == SynthSettings(**{**cpu, "device": "cpu"})
    assert settings.batch_size != profiles.load_profile("gpu-large").values["batch_size"]


def test_gpu_that_cuda_cannot_use_gets_the_cpu_profile(machine) -> None:  # type: ignore[no-untyped-def]
    machine([GpuInfo(0, "RTX 4090", 24564, 20000)], cuda=False)
    assert profiles.device_profile() == "cpu"


def test_the_device_profile_follows_the_backend_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Regression: --backend ort on a CPU-only onnxruntime still got gpu-large, because
    torch could use the GPU, though the run itself goes to the CPU."""
    install_pynvml(monkeypatch, [FakeGpu(total_mb=24564)])
    install_torch(monkeypatch, devices=[("RTX 4090", (8, 9))])
    install_onnxruntime(
        monkeypatch,
        providers=["CPUExecutionProvider"],
        package="onnxruntime",
        distributions={"onnxruntime": "1.22.0"},
    )
    assert devices.choose_device("auto", "ort").device == "cpu"
    ort = profiles.resolve_settings({"backend": "ort"}, None).settings
    assert (ort.batch_size, ort.chunk_frames) == (1, SynthSettings().chunk_frames)
    auto = profiles.resolve_settings({}, None).settings  # torch takes the GPU
    assert (auto.batch_size, auto.chunk_frames) == (64, 2048)


def test_unknown_profile_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError) as info:
        profiles.load_profile("fast")
    assert info.value.exit_code == 2
    message = info.value.message
    assert "unknown profile 'fast'; known profiles: acx, cpu, draft, gpu-large" in message


def test_save_load_round_trip() -> None:
    values = {
        "batch_size": 8,
        "precision": "bf16",
        "cuda_graphs": False,
        "volume": 2,
        "device": "cuda:1",
        "format": "m4b",
    }
    path = profiles.save_profile("night", values, "overnight runs")
    assert path == profiles.user_dir() / "night.toml"
    loaded = profiles.load_profile("night")
    assert loaded.values == {**values, "volume": 2.0}
    assert loaded.description == "overnight runs"
    assert not loaded.builtin
    # the profile names cuda:1; a --device flag wins (this machine has no GPU)
    assert profiles.resolve_settings({"device": "cpu"}, "night").settings.precision == "bf16"


def test_user_profile_wins_over_builtin() -> None:
    write_user("cpu", 'description = "mine"\nthreads = 3\n')
    profile = profiles.load_profile("cpu")
    assert (profile.builtin, profile.overrides_builtin, profile.values) == (
        False,
        True,
        {"threads": 3},
    )


def test_save_refuses_to_replace_without_force() -> None:
    profiles.save_profile("a", {"seed": 1})
    with pytest.raises(OutputError, match="exists"):
        profiles.save_profile("a", {"seed": 2}, force=False)
    profiles.save_profile("a", {"seed": 2}, force=True)
    assert profiles.load_profile("a").values == {"seed": 2}


@pytest.mark.parametrize("name", ["", "../x", "a b", "-x", "x.toml"])
def test_save_refuses_odd_names(name: str) -> None:
    with pytest.raises(Exception) as info:
        profiles.save_profile(name, {"seed": 1})
    assert getattr(info.value, "exit_code", None) == 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("batch_size = [", "is not valid TOML"),
        ("speed = 2\n", "unknown key 'speed'"),
        ('batch_size = "8"\n', "key 'batch_size' = '8' must be a whole number"),
        ("cuda_graphs = 1\n", "key 'cuda_graphs' = 1 must be true or false"),
        ("batch_size = -2\n", "key 'batch_size' = -2 must be 0 (auto) or more"),
        ('precision = "fp8"\n', "key 'precision' = 'fp8' must be one of fp32, fp16, bf16"),
        ('device = "gpu"\n', "key 'device' = 'gpu' must be auto, cpu, cuda or cuda:N"),
        ("description = 3\n", "key 'description' must be text"),
        ("[engine]\nbatch_size = 2\n", "unknown key 'engine'"),
    ],
)
def test_broken_files_name_the_file_and_the_key(text: str, message: str) -> None:
    path = write_user("broken", text)
    with pytest.raises(ProfileError) as info:
        profiles.load_profile("broken")
    assert str(path) in info.value.message
    assert message in info.value.message
    entries = {e.name: e for e in profiles.profile_entries()}
    assert entries["broken"].profile is None  # listed as broken, not raised
    assert entries["gpu-large"].profile is not None


def test_resolve_settings_hands_on_the_device_it_chose(machine) -> None:  # type: ignore[no-untyped-def]
    machine([GpuInfo(0, "RTX 4090", 24564, 20000)], cuda=False)
    resolved = profiles.resolve_settings({}, None)
    assert resolved.choice.device == "cpu"
    assert resolved.settings == SynthSettings(**profiles.load_profile("cpu").values)
