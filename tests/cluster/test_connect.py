"""--cluster without Ray, bad addresses, and where the address comes from (no Ray needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicekit.cli.main import app
from voicekit.cluster.connect import ENV, cluster_address

runner = CliRunner()


def test_without_ray_the_flag_names_the_extra(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    book = tmp_path / "a.md"
    book.write_text("Hello.\n")
    result = runner.invoke(app, ["synth", str(book), "-o", str(tmp_path / "out"),
                                 "--cluster", "local"])  # fmt: skip
    assert result.exit_code == 6
    assert result.output.strip().splitlines() == [
        "error: --cluster needs Ray, which is not installed (pip install 'voicekit[cluster]')"
    ]
    assert not (tmp_path / "out").exists()


def test_a_bad_address_is_refused_up_front(tmp_path: Path) -> None:
    book = tmp_path / "a.md"
    book.write_text("Hello.\n")
    result = runner.invoke(app, ["synth", str(book), "--cluster", "host:6379"])
    assert result.exit_code == 2
    assert "not local, auto or ray://host:port" in result.output


def test_address_from_flag_then_environment_then_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(ENV, raising=False)
    assert cluster_address(None, None) is None
    assert cluster_address(None, "auto") == "auto"
    monkeypatch.setenv(ENV, "ray://head:10001")
    assert cluster_address(None, "auto") == "ray://head:10001"
    assert cluster_address("local", "auto") == "local"
