"""Golden readings: symbols, abbreviations, numbers in context, addresses, other scripts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from voicekit.text.model import CODE_CLOSE, CODE_OPEN
from voicekit.text.normalize import normalize_text
from voicekit.text.readings import Reading

GOLDEN = Path(__file__).with_name("golden_readings.tsv")


def _cases() -> list[tuple[str, str]]:
    cases = []
    for line in GOLDEN.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            source, expected = line.split("\t")
            cases.append((source, expected))
    return cases


def test_golden_file_is_large_and_unique() -> None:
    cases = _cases()
    assert len(cases) >= 150
    assert len({source for source, _ in cases}) == len(cases)


@pytest.mark.parametrize(("source", "expected"), _cases())
def test_golden_reading(source: str, expected: str) -> None:
    text = re.sub(r"`([^`]*)`", lambda m: f"{CODE_OPEN}{m.group(1)}{CODE_CLOSE}", source)
    assert normalize_text(text) == expected


def test_url_modes() -> None:
    text = "See https://www.example.com/docs/install or <me@example.com>."
    assert normalize_text(text, reading=Reading(urls="host")) == (
        "See example dot com or me at example dot com."
    )
    assert normalize_text(text, reading=Reading(urls="skip")) == "See or."


def test_other_script_warning_names_the_text() -> None:
    reading = Reading(urls="read")
    assert normalize_text("In Tokyo (東京) it rained.", reading=reading) == "In Tokyo it rained."
    assert reading.warnings == ["skipped text in another script: '東京'"]


def test_other_languages_keep_their_own_script_and_rules() -> None:
    assert normalize_text("Москва 5", "ru") == "Москва пять"
    # no English symbol words in German; the host keeps the language's word for the dot
    assert normalize_text("Siehe http://beispiel.de/", "de") == "Siehe beispiel Punkt de"
