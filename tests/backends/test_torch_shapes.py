"""Padded shapes and batch grouping of the torch backend (no torch needed)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from voicekit.backends.torch.shapes import (
    ID_BUDGET,
    ID_ROW_STEP,
    ID_TAIL_EIGHTHS,
    ID_WINDOW,
    MAX_PACK_ROWS,
    PACK_WINDOW,
    PAD_BATCHES,
    PAD_LENGTHS,
    ROW_COUNTS,
    IdRow,
    Piece,
    batch_groups,
    fitting_size,
    id_row_shapes,
    id_rows,
    pack_row_shapes,
    pack_rows,
    pad_lengths,
    padded,
    padded_shape,
    row_batches,
    row_counts,
    tail_width,
)


def test_bucket_is_the_smallest_that_holds() -> None:
    assert fitting_size(1, PAD_BATCHES) == 1
    assert fitting_size(3, PAD_BATCHES) == 4
    assert fitting_size(64, PAD_BATCHES) == 64
    assert fitting_size(65, PAD_BATCHES) is None
    assert fitting_size(100, PAD_LENGTHS) == 128
    assert list(PAD_LENGTHS) == sorted(PAD_LENGTHS)


def test_chunk_windows_get_buckets_of_their_own() -> None:
    buckets = pad_lengths(chunk=2048, overlap=16)
    assert {2064, 2080} <= set(buckets) and list(buckets) == sorted(buckets)
    # A full interior window (chunk + both overlaps) is not padded at all.
    assert padded_shape(5, 2080, pad=True, pad_to=buckets) == (8, 2080)
    assert pad_lengths() == PAD_LENGTHS


def test_padded_rounds_past_the_last_bucket() -> None:
    assert padded(17, PAD_LENGTHS) == 32
    assert padded(5000, PAD_LENGTHS, 512) == 5120
    assert padded(4096, PAD_LENGTHS, 512) == 4096


def test_vocoder_groups_respect_batch_and_padded_frame_budget() -> None:
    lengths = [900, 700, 500, 300, 300, 100, 40, 20]  # longest first, as the vocoder sorts
    groups = list(batch_groups(lengths, max_batch=4, frame_budget=2048, pad=True))
    assert [k for g in groups for k in g] == list(range(len(lengths)))
    for g in groups:
        assert len(g) <= 4
        rows, frames = padded_shape(len(g), lengths[g[0]], pad=True)
        assert rows * frames <= 2048 or len(g) == 1
    assert len(groups) > 2
    # Without a limit (the CPU default is one at a time) every window runs alone.
    assert len(list(batch_groups(lengths, 1, 1 << 30, pad=False))) == len(lengths)
    # Exact shapes: rows x longest, no bucket rounding.
    assert padded_shape(3, 100, pad=False) == (3, 100)
    assert padded_shape(3, 100, pad=True) == (4, 128)


# -- the packed shape policy -------------------------------------------------------------------
GAP, OVERLAP = 11, 43  # the bundled voice: decoder field, decoder + flow field


def _check_pieces(lengths: list[int], rows: int, pieces: list[Piece], window: int) -> None:
    kept: dict[int, list[tuple[int, int]]] = {}
    by_row: dict[int, list[Piece]] = {}
    for p in pieces:
        assert 0 <= p.row < rows and p.offset + p.stop - p.start <= window
        assert p.start <= p.keep_start < p.keep_stop <= p.stop
        # Cut pieces keep only what lies a full overlap inside the cut.
        assert p.keep_start - p.start >= min(OVERLAP, p.keep_start)
        assert p.stop - p.keep_stop >= min(OVERLAP, lengths[p.item] - p.keep_stop)
        kept.setdefault(p.item, []).append((p.keep_start, p.keep_stop))
        by_row.setdefault(p.row, []).append(p)
    for item, n in enumerate(lengths):  # every frame kept exactly once
        spans = sorted(kept[item])
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    for row in by_row.values():  # a gap between neighbours in a row
        row.sort(key=lambda p: p.offset)
        for a, b in itertools.pairwise(row):
            assert b.offset >= a.offset + (a.stop - a.start) + GAP


def test_pack_rows_covers_every_frame_once_with_gaps() -> None:
    rng = np.random.default_rng(3)
    lengths = [int(n) for n in rng.integers(1, 3000, 200)]
    rows, pieces = pack_rows(lengths, PACK_WINDOW, GAP, OVERLAP)
    _check_pieces(lengths, rows, pieces, PACK_WINDOW)
    with pytest.raises(ValueError):
        pack_rows([10], 80, GAP, 40)


def test_row_batches_have_no_padded_rows_and_few_sizes() -> None:
    for rows in range(1, 200):
        batches = row_batches(rows, MAX_PACK_ROWS, last_alone=True)
        assert [r for b in batches for r in b] == list(range(rows))
        assert {len(b) for b in batches} <= set(ROW_COUNTS)
        assert len(batches[-1]) == 1
    assert tail_width(200) == 256 and tail_width(257) == 512 and tail_width(900) == 1024
    assert tail_width(700, 1024, (2, 4, 6)) == 768 and tail_width(769, 1024, (2, 4, 6)) == 1024
    # Duration rows: batches of 16, then powers of four, so that five lone-row widths
    # (eighths) fit in eight shapes with the three row counts.
    for rows in range(1, 100):
        batches = row_batches(rows, 16, last_alone=True, step=ID_ROW_STEP)
        assert [r for b in batches for r in b] == list(range(rows))
        assert {len(b) for b in batches} <= {1, 4, 16}
    assert row_counts(16, ID_ROW_STEP) == [1, 4, 16] and row_counts(8, ID_ROW_STEP) == [1, 4, 8]
    assert row_counts(32) == [1, 2, 4, 8, 16, 32]
    shapes = id_row_shapes(64)
    assert len(shapes) <= 8 and {w for r, w in shapes if r > 1} == {ID_WINDOW}
    assert sorted(w for r, w in shapes if r == 1)[:-1] == [
        ID_WINDOW * e // 8 for e in ID_TAIL_EIGHTHS
    ]
    assert len(pack_row_shapes(64)) <= 8


ID_GAP = 9  # a Piper voice's duration predictor: kernel 3, dilation 9


def _check_id_rows(lengths: list[int], max_rows: int) -> list[tuple[int, list[IdRow]]]:
    batches = id_rows(lengths, max_rows, ID_GAP)
    seen = sorted(i for _, rows in batches for row in rows for i, _ in row)
    assert seen == list(range(len(lengths)))  # every sentence once, none cut
    for width, rows in batches:
        assert len(rows) * width <= max(ID_BUDGET, width)
        assert len(rows) & (len(rows) - 1) == 0 and len(rows) <= max(1, max_rows)
        for row in rows:
            row = sorted(row, key=lambda p: p[1])
            assert row[-1][1] + lengths[row[-1][0]] <= width
            for (a, at), (_, bt) in itertools.pairwise(row):
                assert bt >= at + lengths[a] + ID_GAP  # a gap between neighbours
    return batches


def test_a_call_of_two_long_sentences_and_a_short_one_is_not_mostly_padding() -> None:
    # The bench's 20 s text (gpu-large): 467 + 405 ids and a gap fill a row to 881,
    # just past 3/4 of it; in quarters that row ran 1,024 wide (0.849 for the call).
    lengths = [215, 405, 467]
    batches = id_rows(lengths, 64, ID_GAP)
    assert sorted(w for w, _ in batches) == [256, 896]
    assert sum(lengths) / sum(len(rows) * w for w, rows in batches) >= 0.85
    assert {(len(rows), w) for w, rows in batches} <= set(id_row_shapes(64))


def test_id_rows_pack_sentences_apart_and_keep_every_index() -> None:
    lengths = [5, 40, 33, 700, 31, 32, 120, 1500, 1024, 1025]
    batches = _check_id_rows(lengths, max_rows=64)
    # The short ones share a row; only those past the window run alone, padded.
    alone = {row[0][0]: width for width, rows in batches for row in rows if width > ID_WINDOW}
    assert alone == {7: 1536, 9: 1280}
    assert max(len(row) for _, rows in batches for row in rows) > 1
    rng = np.random.default_rng(5)
    for max_rows in (1, 4, 32, 64):
        _check_id_rows([int(n) for n in rng.integers(1, 900, 300)], max_rows)
    assert id_rows([], 64, ID_GAP) == []


def book(hours: float, seed: int = 9) -> tuple[list[int], list[int]]:
    """(phoneme ids, latent frames) per sentence of a made-up book of ``hours`` of speech.

    Sentence lengths are log-normal (median ~80 characters, a long tail past 400,
    capped as split_sentences caps them); ids ~2 per character as Piper interleaves
    pads; frames ~3 per id with some spread (86 frames a second at ~14 characters).
    """
    rng = np.random.default_rng(seed)
    ids: list[int] = []
    frames: list[int] = []
    total = 0.0
    while total < hours * 3600 * 86:
        chars = int(np.clip(rng.lognormal(np.log(80), 0.7), 2, 400))
        n_ids = 2 * chars + 1
        n_frames = max(1, int(n_ids * rng.normal(3.0, 0.4)))
        ids.append(n_ids)
        frames.append(n_frames)
        total += n_frames
    return ids, frames


def simulate(ids: list[int], frames: list[int], per_call: int = 512) -> dict[str, Any]:
    """The torch backend's packed shape policy over a whole book, call by call."""
    shapes: dict[str, set[tuple[int, int]]] = {"durations": set(), "decoder": set()}
    useful = {"ids": 0, "frames": 0}
    computed = {"ids": 0, "frames": 0}
    for start in range(0, len(ids), per_call):
        call_ids, call_frames = ids[start : start + per_call], frames[start : start + per_call]
        for width, id_batch in id_rows(call_ids, 64, ID_GAP):
            shapes["durations"].add((len(id_batch), width))
            useful["ids"] += sum(call_ids[i] for row in id_batch for i, _ in row)
            computed["ids"] += len(id_batch) * width
        rows, pieces = pack_rows(call_frames, PACK_WINDOW, GAP, OVERLAP)
        by_row: dict[int, int] = {}
        for p in pieces:
            by_row[p.row] = max(by_row.get(p.row, 0), p.offset + p.stop - p.start)
        for batch in row_batches(rows, MAX_PACK_ROWS, last_alone=True):
            width = PACK_WINDOW if len(batch) > 1 else tail_width(by_row[batch[0]])
            shapes["decoder"].add((len(batch), width))
            computed["frames"] += len(batch) * width
        useful["frames"] += sum(call_frames)
    return {
        "shapes": shapes,
        "ids": useful["ids"] / computed["ids"],
        "frames": useful["frames"] / computed["frames"],
    }


def test_a_ten_hour_book_uses_few_decoder_shapes_and_little_padding() -> None:
    ids, frames = book(10.0)
    assert sum(frames) / 86 / 3600 >= 10 and len(ids) > 4000
    result = simulate(ids, frames)
    # Flow and decoder run on the same packed rows: one set of shapes for both.
    assert len(result["shapes"]["decoder"]) <= 8, result["shapes"]["decoder"]
    assert result["frames"] >= 0.85, result
    # Durations pack sentences into rows of ids too (attention masked per sentence).
    assert len(result["shapes"]["durations"]) <= 8, result["shapes"]["durations"]
    assert result["shapes"]["durations"] <= set(id_row_shapes(64))
    assert result["ids"] >= 0.85, result
