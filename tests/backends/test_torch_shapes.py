"""Bucketed shapes and batch grouping of the torch backend (no torch needed)."""

from __future__ import annotations

from voicekit.backends.torch.shapes import (
    BATCH_BUCKETS,
    PAD_LENGTHS,
    batch_groups,
    bucket,
    pad_lengths,
    padded,
    padded_shape,
)


def test_bucket_is_the_smallest_that_holds() -> None:
    assert bucket(1, BATCH_BUCKETS) == 1
    assert bucket(3, BATCH_BUCKETS) == 4
    assert bucket(64, BATCH_BUCKETS) == 64
    assert bucket(65, BATCH_BUCKETS) is None
    assert bucket(100, PAD_LENGTHS) == 128
    assert list(PAD_LENGTHS) == sorted(PAD_LENGTHS)


def test_chunk_windows_get_buckets_of_their_own() -> None:
    buckets = pad_lengths(chunk=2048, overlap=16)
    assert {2064, 2080} <= set(buckets) and list(buckets) == sorted(buckets)
    # A full interior window (chunk + both overlaps) is not padded at all.
    assert padded_shape(5, 2080, bucketing=True, lengths=buckets) == (8, 2080)
    assert pad_lengths() == PAD_LENGTHS


def test_padded_rounds_past_the_last_bucket() -> None:
    assert padded(17, PAD_LENGTHS) == 32
    assert padded(5000, PAD_LENGTHS, 512) == 5120
    assert padded(4096, PAD_LENGTHS, 512) == 4096


def test_vocoder_groups_respect_batch_and_padded_frame_budget() -> None:
    lengths = [900, 700, 500, 300, 300, 100, 40, 20]  # longest first, as the vocoder sorts
    groups = list(batch_groups(lengths, max_batch=4, frame_budget=2048, bucketing=True))
    assert [k for g in groups for k in g] == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= 4
        rows, frames = padded_shape(len(g), lengths[g[0]], bucketing=True)
        assert rows * frames <= 2048 or len(g) == 1
    assert len(groups) > 2
    # Without a limit (the CPU default is one at a time) every window runs alone.
    assert len(list(batch_groups(lengths, 1, 1 << 30, bucketing=False))) == len(lengths)
    # Exact shapes: rows x longest, no bucket rounding.
    assert padded_shape(3, 100, bucketing=False) == (3, 100)
    assert padded_shape(3, 100, bucketing=True) == (4, 128)
