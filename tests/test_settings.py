"""The settings' field docs: read from the source on first use, never at import."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from voicekit import settings
from voicekit.settings import SETTING_FIELDS, field_doc

ROOT = Path(__file__).resolve().parents[1]


def test_importing_the_settings_reads_no_source() -> None:
    script = textwrap.dedent(
        """
        import inspect
        calls = []
        real = inspect.getsource
        inspect.getsource = lambda obj: calls.append(obj) or real(obj)
        import voicekit.settings as s
        print(len(calls))
        s.field_doc("seed")
        s.field_doc("volume")
        print(len(calls))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["0", "1"]  # none at import, then once for all the fields


def test_every_setting_has_a_doc() -> None:
    assert [name for name in SETTING_FIELDS if not field_doc(name)] == []


def test_without_sources_the_docs_are_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_source(obj: object) -> str:
        raise OSError("could not get source code")  # what a frozen install says

    monkeypatch.setattr(inspect, "getsource", no_source)
    settings._field_docs.cache_clear()
    try:
        assert field_doc("seed") == ""
    finally:
        settings._field_docs.cache_clear()
