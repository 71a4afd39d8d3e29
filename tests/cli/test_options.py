"""Every settings field is a flag of synth and of profiles save, defined once."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from voicekit.cli.main import app
from voicekit.cli.options import SETTINGS_OPTIONS
from voicekit.settings import SETTING_FIELDS


def test_every_setting_has_exactly_one_flag_definition() -> None:
    assert set(SETTINGS_OPTIONS) == set(SETTING_FIELDS)


@pytest.mark.parametrize("command", [["synth"], ["profiles", "save"]])
def test_commands_take_every_settings_flag(command: list[str]) -> None:
    result = CliRunner(env={"COLUMNS": "250"}).invoke(app, [*command, "--help"])
    assert result.exit_code == 0
    for name in SETTING_FIELDS:
        assert f"--{name.replace('_', '-')}" in result.stdout, name


def test_settings_flags_reach_the_profile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["profiles", "save", "mine", "--bucket-size", "3",
                                      "--no-speak-titles", "--backend", "ort"])
    assert result.exit_code == 0, result.stderr
    from voicekit.profiles import load_profile

    assert load_profile("mine").values == {"bucket_size": 3, "speak_titles": False,
                                          "backend": "ort"}
