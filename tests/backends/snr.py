"""Signal-to-noise ratio of one backend's audio against another's (the reference)."""

from __future__ import annotations

import numpy as np


def snr_db(out: np.ndarray, ref: np.ndarray) -> float:
    assert len(out) == len(ref), (len(out), len(ref))
    noise = float(np.sum((out.astype(np.float64) - ref) ** 2))
    return (
        float("inf")
        if noise == 0
        else 10 * np.log10(float(np.sum(ref.astype(np.float64) ** 2)) / noise)
    )
