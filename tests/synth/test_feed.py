"""The phonemizer thread runs far enough ahead of the voice."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from voicekit.synth.feed import prefetch


class _Voice:
    def __init__(self) -> None:
        self.done = 0
        self.lock = threading.Lock()

    def phoneme_ids(self, sentence: str) -> list[int]:
        with self.lock:
            self.done += 1
        return [1, 0, 5, 0, 6, 0, 2]


class _Bucket:
    def __init__(self, n: int, k: int) -> None:
        self.hash = f"{k:016x}" + "0" * 48
        self.sentences = [f"s{k}-{i}" for i in range(n)]


def _settle(voice: _Voice, seconds: float = 2.0) -> int:
    last, deadline = -1, time.monotonic() + seconds
    while time.monotonic() < deadline:
        if voice.done == last:
            break
        last = voice.done
        time.sleep(0.1)
    return voice.done


@pytest.mark.parametrize("sentences", [0, 600])
def test_prefetch_runs_two_calls_ahead_when_asked(sentences: int) -> None:
    voice = _Voice()
    buckets: list[Any] = [_Bucket(10, k) for k in range(200)]  # 2,000 sentences
    feed = prefetch(voice, buckets, 1, depth=8, sentences=sentences)  # type: ignore[arg-type]
    bucket, utts = next(feed)
    assert bucket is buckets[0] and len(utts) == 10 and all(u is not None for u in utts)
    ahead = _settle(voice)
    if sentences:
        assert 600 <= ahead <= 620  # two 300-sentence calls queued, not 8 buckets
    else:
        assert ahead <= 10 * (8 + 2)
    rest = list(feed)
    assert [b for b, _ in rest] == buckets[1:]  # in order, none lost


def test_prefetch_hands_over_errors() -> None:
    class Broken(_Voice):
        def phoneme_ids(self, sentence: str) -> list[int]:
            raise RuntimeError("espeak-ng died")

    with pytest.raises(RuntimeError, match="espeak-ng died"):
        list(prefetch(Broken(), [_Bucket(1, 0)], 1))  # type: ignore[list-item]
