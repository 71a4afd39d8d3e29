"""Phonemize ahead of the voice, in a thread, so the model never waits on espeak-ng."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from voicekit.backends.base import Utterance
from voicekit.backends.voices import Voice
from voicekit.text.sentences import Bucket

_DONE = object()


def bucket_utterances(voice: Voice, bucket: Bucket, seed: int) -> list[Utterance | None]:
    """A bucket's sentences as the voice takes them; None for one with nothing to say.

    Each sentence's noise is seeded by (seed, bucket hash, index), so its audio is the
    same whichever thread or process makes it, alone or beside other buckets.
    """
    key = int(bucket.hash[:16], 16)
    utts: list[Utterance | None] = []
    for i, sentence in enumerate(bucket.sentences):
        ids = voice.phoneme_ids(sentence)
        # BOS, PAD, EOS only: nothing to say (e.g. a lone dash)
        utts.append(
            Utterance(np.asarray(ids, dtype=np.int64), (seed, key, i)) if len(ids) > 3 else None
        )
    return utts


def prefetch(
    voice: Voice,
    pending: list[Bucket],
    seed: int,
    depth: int = 8,
    sentences: int = 0,
    clock: Callable[[str, float], None] | None = None,
) -> Iterator[tuple[Bucket, list[Utterance | None]]]:
    """Phonemize ahead of the voice in a thread, so the GPU does not wait on espeak-ng.

    The thread stays up to ``depth`` buckets ahead, or, when ``sentences`` is given,
    as many buckets as hold that many sentences (at least ``depth``): a call of the
    torch backend takes hundreds of sentences, so a fixed bucket count would leave
    the next call unphonemized while the GPU idles. Pass two calls' worth.
    ``clock("phonemize", seconds)`` is told the time each bucket took.
    """
    ready: deque[Any] = deque()
    queued = [0]  # sentences in ``ready``
    cond = threading.Condition()
    stop = threading.Event()

    def room() -> bool:
        return len(ready) < depth or (sentences > 0 and queued[0] < sentences)

    def put(item: Any, count: int) -> None:
        with cond:
            ready.append((item, count))
            queued[0] += count
            cond.notify_all()

    def produce() -> None:
        try:
            for bucket in pending:
                began = time.perf_counter()
                utts = bucket_utterances(voice, bucket, seed)
                if clock is not None:
                    clock("phonemize", time.perf_counter() - began)
                with cond:
                    while not stop.is_set() and not room():
                        cond.wait(0.2)
                if stop.is_set():
                    return
                put((bucket, utts), len(utts))
            put(_DONE, 0)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put(exc, 0)

    thread = threading.Thread(target=produce, name="voicekit-phonemize", daemon=True)
    thread.start()
    try:
        while True:
            with cond:
                while not ready:
                    cond.wait()
                item, count = ready.popleft()
                queued[0] -= count
                cond.notify_all()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        with cond:
            cond.notify_all()
