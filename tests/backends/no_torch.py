"""Run a test as on a machine without PyTorch, then put every module back."""

from __future__ import annotations

import sys

import pytest

PACKAGE = "voicekit.backends.torch"


def block_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import torch`` fail for the rest of the test, as where it is not installed.

    Our torch-backed modules already imported (by other tests) hold the real torch,
    so they leave ``sys.modules`` too and must be imported afresh; monkeypatch puts
    the originals back afterwards, so later tests keep the classes they imported.
    """
    monkeypatch.setitem(sys.modules, "torch", None)
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        monkeypatch.delitem(sys.modules, name)
    # A fresh import rebinds the parent package's attribute: restore that as well.
    parent = sys.modules["voicekit.backends"]
    monkeypatch.setattr(parent, "torch", getattr(parent, "torch", None), raising=False)
