"""Phonemize ahead of the voice, in a thread, so the model never waits on espeak-ng."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from voicekit.backends.base import Utterance
from voicekit.backends.voices import Voice
from voicekit.text.sentences import Bucket

_DONE = object()


def prefetch(
    voice: Voice, pending: list[Bucket], seed: int, depth: int = 8
) -> Iterator[tuple[Bucket, list[Utterance | None]]]:
    """Phonemize ahead of the voice in a thread, so the GPU does not wait on espeak-ng."""
    out: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for bucket in pending:
                key = int(bucket.hash[:16], 16)
                utts: list[Utterance | None] = []
                for i, sentence in enumerate(bucket.sentences):
                    ids = voice.phoneme_ids(sentence)
                    # BOS, PAD, EOS only: nothing to say (e.g. a lone dash)
                    utts.append(
                        Utterance(np.asarray(ids, dtype=np.int64), (seed, key, i))
                        if len(ids) > 3
                        else None
                    )
                while not stop.is_set():
                    try:
                        out.put((bucket, utts), timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            out.put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            out.put(exc)

    thread = threading.Thread(target=produce, name="voicekit-phonemize", daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
