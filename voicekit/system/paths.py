"""Where voicekit keeps its files: the config home (profiles) and the cache (split voices)."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def config_home() -> Path:
    """``$VOICEKIT_HOME``, else the platform's user config folder for voicekit."""
    env = os.environ.get("VOICEKIT_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_config_dir("voicekit"))


def cache_dir() -> Path:
    """``$VOICEKIT_CACHE``, else the platform's user cache folder for voicekit."""
    env = os.environ.get("VOICEKIT_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("voicekit"))
