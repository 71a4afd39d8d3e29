"""Fixtures of the backend tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def env_cache(cache_root: Path) -> Iterator[Path]:
    # Module-scoped objects are built before the per-test autouse fixture runs.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VOICEKIT_CACHE", str(cache_root))
        yield cache_root
