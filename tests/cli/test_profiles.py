"""``voicekit profiles list | show | save | path`` and ``synth --profile``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from typer.testing import CliRunner

from voicekit import profiles
from voicekit.cli.main import app
from voicekit.settings import SETTING_FIELDS, SynthSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

runner = CliRunner()


def test_list_shows_builtins_and_user_profiles() -> None:
    profiles.save_profile("cpu", {"threads": 2}, "my cpu")
    (profiles.user_dir() / "bad.toml").write_text("batch_size = [", encoding="utf-8")
    result = runner.invoke(app, ["profiles", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("draft", "gpu-large", "gpu-small", "quality"):
        assert name in result.stdout
    assert "user (replaces built-in)" in result.stdout
    assert "broken:" in result.stdout
    data = {
        p["name"]: p for p in json.loads(runner.invoke(app, ["profiles", "list", "--json"]).stdout)
    }
    assert data["cpu"]["overrides_builtin"] is True
    assert data["gpu-large"]["values"]["batch_size"] == 64
    assert "not valid TOML" in data["bad"]["error"]


def test_show() -> None:
    result = runner.invoke(app, ["profiles", "show", "gpu-small"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "gpu-small (built-in" in result.stdout
    assert "chunk_frames" in result.stdout and "512" in result.stdout
    assert "Vocode long sentences in chunks" in result.stdout  # the setting's own doc
    data = json.loads(runner.invoke(app, ["profiles", "show", "draft", "--json"]).stdout)
    assert data["values"]["format"] == "mp3"


def test_show_prints_every_resolved_setting_and_marks_the_profiles() -> None:
    """Regression: `profiles show cpu` printed only batch_size, the one value it sets."""
    result = runner.invoke(app, ["profiles", "show", "cpu"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {
        cells[0]: cells[1:]
        for line in result.stdout.splitlines()
        if len(cells := [c.strip() for c in line.strip("│").split("│")]) == 4
    }
    assert set(SETTING_FIELDS) <= set(rows)
    assert rows["batch_size"][:2] == ["1", "profile"]
    assert rows["bucket_size"][:2] == [str(SynthSettings().bucket_size), "default"]
    assert rows["voice"][:2] == ["unset", "default"]
    data = json.loads(runner.invoke(app, ["profiles", "show", "cpu", "--json"]).stdout)
    assert data["values"] == {"batch_size": 1}
    assert data["resolved"]["batch_size"] == 1
    assert data["resolved"]["sentence_silence"] == SynthSettings().sentence_silence
    assert set(data["resolved"]) == set(SETTING_FIELDS)


def test_show_unknown_and_broken() -> None:
    result = runner.invoke(app, ["profiles", "show", "nope"])
    assert result.exit_code == 2
    assert "unknown profile 'nope'; known profiles: acx, cpu, draft" in result.output
    path = profiles.user_dir() / "typo.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("batch_size = -1\n", encoding="utf-8")
    result = runner.invoke(app, ["profiles", "show", "typo"])
    assert result.exit_code == 2
    assert f"profile {path}: key 'batch_size' = -1 must be 0 (auto) or more" in result.output


def test_save_round_trip() -> None:
    result = runner.invoke(
        app,
        [
            "profiles",
            "save",
            "night",
            "--batch-size",
            "8",
            "--precision",
            "bf16",
            "--no-cuda-graphs",
            "--format",
            "m4b",
            "-d",
            "overnight",
        ],
    )
    assert result.exit_code == 0, result.output
    path = profiles.user_dir() / "night.toml"
    assert f"saved profile 'night' to {path}" in result.output
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert data == {
        "description": "overnight",
        "batch_size": 8,
        "precision": "bf16",
        "cuda_graphs": False,
        "format": "m4b",
    }
    shown = json.loads(runner.invoke(app, ["profiles", "show", "night", "--json"]).stdout)
    assert shown["values"] == {
        "batch_size": 8,
        "precision": "bf16",
        "cuda_graphs": False,
        "format": "m4b",
    }


def test_save_from_another_profile() -> None:
    result = runner.invoke(
        app, ["profiles", "save", "mid", "--from", "gpu-small", "--batch-size", "4"]
    )
    assert result.exit_code == 0, result.output
    loaded = profiles.load_profile("mid")
    assert loaded.values["batch_size"] == 4
    assert loaded.values["chunk_frames"] == 512
    assert loaded.description.startswith("from gpu-small: ")


def test_save_refusals() -> None:
    assert runner.invoke(app, ["profiles", "save", "x", "--seed", "1"]).exit_code == 0
    again = runner.invoke(app, ["profiles", "save", "x", "--seed", "2"])
    assert again.exit_code == 3
    assert "use --force" in again.output
    assert runner.invoke(app, ["profiles", "save", "x", "--seed", "2", "--force"]).exit_code == 0
    bad = runner.invoke(app, ["profiles", "save", "y", "--batch-size", "-1"])
    assert bad.exit_code == 2
    assert "key 'batch_size' = -1 must be 0 (auto) or more" in bad.output
    assert runner.invoke(app, ["profiles", "save", "../evil", "--seed", "1"]).exit_code == 2
    empty = runner.invoke(app, ["profiles", "save", "z"])
    assert empty.exit_code == 2
    assert "nothing to save" in empty.output
    assert not (profiles.user_dir() / "y.toml").exists()


def test_path(tmp_path: Path) -> None:
    result = runner.invoke(app, ["profiles", "path"])
    assert result.exit_code == 0
    assert result.stdout.strip() == str(tmp_path / "home" / "profiles")
    builtin = runner.invoke(app, ["profiles", "path", "quality"]).stdout.strip()
    assert builtin.endswith("quality.toml") and Path(builtin).is_file()


def test_synth_refuses_an_unknown_profile(tmp_path: Path) -> None:
    book = tmp_path / "b.txt"
    book.write_text("Hello.\n", encoding="utf-8")
    result = runner.invoke(app, ["synth", str(book), "--profile", "fastest"])
    assert result.exit_code == 2
    assert "unknown profile 'fastest'; known profiles:" in result.output
