"""system/fsutil.py: files written whole, with the mode the umask asks for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from voicekit.system import fsutil


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="Linux reports the umask")
def test_reading_the_umask_never_sets_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Setting it, even to put it straight back, leaves other threads (lanes, segment
    # writers, ffmpeg starting) with a umask of 0 for that moment.
    old = os.umask(0o027)
    try:
        calls: list[int] = []
        real = os.umask
        monkeypatch.setattr(os, "umask", lambda mask: calls.append(mask) or real(mask))
        assert fsutil._umask() == 0o027
        with fsutil.replacing(tmp_path / "a.txt") as tmp:
            tmp.write_text("x")
        assert calls == []
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)
