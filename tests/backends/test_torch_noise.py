"""Prior noise drawn in a pool, and copies to the host, on the CPU code path."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from voicekit.backends.base import Noise  # noqa: E402
from voicekit.backends.torch.noise import PriorNoise, noise_pool  # noqa: E402
from voicekit.backends.torch.transfer import HostCopy, PendingAudio, Placed  # noqa: E402

CHANNELS = 6
FRAMES = [5, 1, 40, 17, 3]


def _noises() -> list[Noise]:
    noises = [Noise((99, i)) for i in range(len(FRAMES))]
    for n in noises:
        n.duration(7)  # the duration noise comes first, as in a call
    return noises


def _expected() -> list[np.ndarray]:
    return [noise.prior(CHANNELS, n) for noise, n in zip(_noises(), FRAMES, strict=True)]


@pytest.mark.parametrize("threads", [0, 1, 3])
def test_pool_draws_the_same_bytes_as_noise_prior(threads: int) -> None:
    pool = noise_pool(threads)
    try:
        order = [2, 0, 2, 4, 1, 3]  # the order rows need them in, with a repeat
        prior = PriorNoise(_noises(), CHANNELS, FRAMES, order, pool, pinned=False)
        got = [prior.get(i).numpy() for i in range(len(FRAMES))]
    finally:
        if pool is not None:
            pool.shutdown()
    for a, b in zip(got, _expected(), strict=True):
        assert a.shape == b.shape and a.tobytes() == b.tobytes()


def test_only_real_frames_are_drawn() -> None:
    noises = _noises()
    prior = PriorNoise(noises, CHANNELS, FRAMES, range(len(FRAMES)), None, pinned=False)
    # One buffer of exactly the real frames: nothing for padding or gaps.
    assert prior.buffer.numel() == CHANNELS * sum(FRAMES)
    # Each generator gave channels x frames values and no more: its next value is the
    # one a generator that drew exactly that would give next.
    for noise, fresh, n in zip(noises, _noises(), FRAMES, strict=True):
        fresh.prior(CHANNELS, n)
        assert noise.prior(1, 1).tobytes() == fresh.prior(1, 1).tobytes()


def test_host_copy_on_the_cpu_is_a_copy_and_ready() -> None:
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    copy = HostCopy(t, cuda=False)
    assert copy.ready() and copy.event is None
    t.zero_()  # the copy does not alias the source
    assert copy.wait().tolist() == [[0, 1, 2], [3, 4, 5]]


def test_pending_audio_places_rows_into_utterances() -> None:
    pending = PendingAudio([4, 2])
    rows = torch.tensor([[1.0, 2, 3, 4, 0, 5, 6, 0]])
    pending.add(
        HostCopy(rows, cuda=False),
        [Placed(0, 0, slice(0, 4), slice(0, 4)), Placed(1, 0, slice(5, 7), slice(0, 2))],
    )
    first, second = pending.result()
    assert first.tolist() == [1, 2, 3, 4] and second.tolist() == [5, 6]
