"""What the backend tests share: sentences as utterances, and SNR against a reference."""

from __future__ import annotations

import numpy as np

from voicekit.backends.base import Utterance
from voicekit.backends.voices import Voice


def utterances(voice: Voice, sentences: list[str], seed: int, bucket: int) -> list[Utterance]:
    return [
        Utterance(np.asarray(voice.phoneme_ids(text), dtype=np.int64), (seed, bucket, i))
        for i, text in enumerate(sentences)
    ]


def snr_db(out: np.ndarray, ref: np.ndarray) -> float:
    assert len(out) == len(ref), (len(out), len(ref))
    noise = float(np.sum((out.astype(np.float64) - ref) ** 2))
    return (
        float("inf")
        if noise == 0
        else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)
    )
