"""``voicekit doctor``: exit codes, JSON shape, the table; once for real on this machine."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from voicekit.cli import doctor as cli_doctor
from voicekit.cli.main import app
from voicekit.diagnostics.checks import Check
from voicekit.system.devices import nvidia_pci_devices, nvml_gpus

runner = CliRunner()


def fake_checks(*checks: Check) -> list:  # type: ignore[type-arg]
    return [lambda c=c: c for c in checks]


def test_doctor_for_real_exits_0_here() -> None:
    """Every real check once, synthesis included: the one slow doctor test."""
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True
    checks = {c["name"]: c for c in data["checks"]}
    assert list(checks) == [
        "python",
        "voicekit",
        "packages",
        "onnxruntime build",
        "onnxruntime CUDA",
        "torch",
        "torch CUDA graphs",
        "NVIDIA driver",
        "ffmpeg",
        "voice",
        "cache",
        "work folders",
        "device",
    ]
    for c in data["checks"]:
        assert set(c) == {"name", "status", "detail", "fix"}
        assert c["status"] in ("ok", "warn", "fail")
    assert checks["voice"]["status"] == "ok", checks["voice"]["detail"]
    assert "RTF" in checks["voice"]["detail"]
    assert checks["cache"]["status"] == "ok"
    if not nvml_gpus() and not nvidia_pci_devices():
        # a machine without a GPU: said once, and no GPU advice (regression: the
        # onnxruntime-gpu that a CPU install pulled in was warned about)
        assert checks["device"]["status"] == "ok"
        assert checks["device"]["detail"].startswith("no NVIDIA GPU found")
        assert checks["onnxruntime build"]["status"] == "ok"


def test_warnings_still_exit_0(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        cli_doctor,
        "CHECKS",
        fake_checks(
            Check("python", "ok", "Python 3.11"),
            Check("device", "warn", "no NVIDIA GPU", "use a GPU machine"),
        ),
    )
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 0
    assert "synthesis works on this machine (1 warning)" in result.stdout
    assert "fix: use a GPU machine" in result.stdout


def test_a_failure_exits_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        cli_doctor,
        "CHECKS",
        fake_checks(
            Check("python", "ok", "Python 3.11"),
            Check("voice", "fail", "the bundled voice cannot be loaded", "reinstall it"),
        ),
    )
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1
    assert "synthesis cannot work here: fix voice" in result.stdout
    json_result = runner.invoke(app, ["doctor", "--json"])
    assert json_result.exit_code == 1
    assert json.loads(json_result.stdout) == {
        "ok": False,
        "checks": [
            {"name": "python", "status": "ok", "detail": "Python 3.11", "fix": None},
            {
                "name": "voice",
                "status": "fail",
                "detail": "the bundled voice cannot be loaded",
                "fix": "reinstall it",
            },
        ],
    }
