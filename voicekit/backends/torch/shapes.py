"""Shapes the torch backend runs at, without importing torch.

On CUDA the backend pads each call's batch and length up to a few fixed sizes
(``PAD_BATCHES``, ``PAD_LENGTHS``), so cuDNN autotuning, compiles and CUDA graphs
see a bounded set of shapes. backends/memory.py estimates a run's GPU memory from
these same numbers and functions before the backend (and torch) is loaded, so
they live here, importable on their own: one definition keeps the estimate and
the real shapes from drifting apart.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from voicekit.backends.base import BACKENDS

PAD_BATCHES = (1, 2, 4, 8, 16, 32, 64)
PAD_LENGTHS = (
    16, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024,
    1280, 1536, 2048, 2560, 3072, 4096,
)  # fmt: skip
CUDA_VOCODER_BATCH = BACKENDS["torch"].cuda_batch
"""Chunk windows vocoded together on CUDA."""
CUDA_FRAME_BUDGET = 32768
"""Padded latent frames per vocoder call on CUDA (~6 min of audio)."""
CPU_FRAME_BUDGET = 1 << 30
"""No frame cap on the CPU: the batch size alone bounds a vocoder call there."""


def fitting_size(value: int, sizes: Sequence[int]) -> int | None:
    """The smallest of ``sizes`` holding ``value``; None when it is larger than them all."""
    i = bisect.bisect_left(sizes, value)
    return sizes[i] if i < len(sizes) else None


def padded(value: int, sizes: Sequence[int], quantum: int = 64) -> int:
    """``value`` rounded up to its size, or to a multiple of ``quantum`` past the last."""
    size = fitting_size(value, sizes)
    return size if size is not None else -(-value // quantum) * quantum


def pad_lengths(chunk: int = 0, overlap: int = 0) -> tuple[int, ...]:
    """The lengths calls are padded to, plus the exact window sizes chunked vocoding makes."""
    extra = {chunk + overlap, chunk + 2 * overlap} if chunk > 0 else set()
    return tuple(sorted(set(PAD_LENGTHS) | extra))


def padded_shape(
    batch: int, length: int, pad: bool, pad_to: Sequence[int] = PAD_LENGTHS
) -> tuple[int, int]:
    """(batch, length) padded up to ``PAD_BATCHES`` and ``pad_to`` when ``pad``, else as is."""
    if not pad:
        return batch, length
    return padded(batch, PAD_BATCHES, 64), padded(length, pad_to, 512)


def batch_groups(
    lengths: Sequence[int],
    max_batch: int,
    frame_budget: int,
    pad: bool,
    pad_to: Sequence[int] = PAD_LENGTHS,
) -> Iterator[list[int]]:
    """Consecutive items (sorted longest first) in batches of at most ``max_batch``
    whose padded size, rows x frames, stays within ``frame_budget``."""
    group: list[int] = []
    for k in range(len(lengths)):
        if group:
            rows, frames = padded_shape(len(group) + 1, lengths[group[0]], pad, pad_to)
            if len(group) >= max_batch or rows * frames > frame_budget:
                yield group
                group = []
        group.append(k)
    if group:
        yield group


# -- the packed shape policy (CUDA, and any batched run) -------------------------------------
# A call's utterances are laid end to end in rows of PACK_WINDOW latent frames, with a
# gap of zeros between them, and flow and decoder run on those rows (masked per layer,
# so each utterance computes as if alone). Row batches are MAX_PACK_ROWS rows, the rest
# split into powers of two: no padded rows, and at most len(ROW_COUNTS) decoder shapes.
PACK_WINDOW = 1024
MAX_PACK_ROWS = CUDA_FRAME_BUDGET // PACK_WINDOW
ROW_COUNTS = tuple(1 << i for i in range(MAX_PACK_ROWS.bit_length()))
ID_WINDOW = 1024
"""Phoneme ids per duration-stage row: sentences laid end to end, as frames are."""
ID_PAD_LENGTHS = (32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 768, 1024)
"""Lengths a sentence longer than ``ID_WINDOW`` pads to (running alone; rare)."""
ID_BUDGET = 16 * ID_WINDOW
"""Padded ids per duration batch."""
ID_ROW_STEP = 4
"""Duration row batches: the largest, then powers of four below (16, 4, 1), not of two.
A row batch never pads rows, so fewer counts only cost a few more launches at a call's
end, and the shapes saved go to finer widths for lone rows (``ID_TAIL_EIGHTHS``)."""
ID_TAIL_EIGHTHS = (2, 3, 4, 5, 7)
"""Widths (eighths of ``ID_WINDOW``) a lone row of ids may narrow to: with row counts
16, 4, 1, eight duration shapes. A call of a few sentences is all lone rows, each
rounded up to one of these. Quarters lost up to a third of such a row: two long
sentences (the bench's 20 s text: 467 + 405 ids and a gap, 881) fill a row just past
3/4, so it ran 1,024 wide, and the call's padding efficiency fell to 0.849. Of the
five-eighths sets, scored on random calls of 2-8 bench sentences, this one keeps
7/8 and scores within 0.003 of the best (which drops 7/8 and stays at 0.849 there)."""


@dataclass(frozen=True)
class Piece:
    """Frames [start, stop) of utterance ``item`` at ``offset`` in packed row ``row``;
    its output is kept for [keep_start, keep_stop) (utterance frames)."""

    item: int
    start: int
    stop: int
    keep_start: int
    keep_stop: int
    row: int
    offset: int


def pack_rows(
    lengths: Sequence[int], window: int, gap: int, overlap: int
) -> tuple[int, list[Piece]]:
    """Lay utterances of ``lengths`` frames into rows of ``window`` frames: (rows, pieces).

    Longer utterances are cut into windows with ``overlap`` frames of context each
    side (kept output never sees the cut). Pieces go first-fit, longest first, each
    ``gap`` frames past the last one in its row.
    """
    if window <= 2 * overlap:
        raise ValueError(f"window {window} leaves no room past 2 x overlap {overlap}")
    spans: list[tuple[int, int, int, int, int]] = []
    for item, n in enumerate(lengths):
        if n <= window:
            spans.append((item, 0, n, 0, n))
            continue
        step = window - 2 * overlap
        for keep in range(0, n, step):
            stop = min(n, keep + step)
            spans.append((item, max(0, keep - overlap), min(n, stop + overlap), keep, stop))
    spans.sort(key=lambda s: s[2] - s[1], reverse=True)
    ends: list[int] = []  # next free offset of each row
    pieces: list[Piece] = []
    first_open = 0  # rows before this one have no room for even the shortest piece left
    for item, start, stop, keep_start, keep_stop in spans:
        size = stop - start
        for row in range(first_open, len(ends)):
            if ends[row] + size <= window:
                break
        else:
            row = len(ends)
            ends.append(0)
        pieces.append(Piece(item, start, stop, keep_start, keep_stop, row, ends[row]))
        ends[row] += size + gap
        while first_open < len(ends) and ends[first_open] >= window:
            first_open += 1
    return len(ends), pieces


def row_batches(
    rows: int, max_rows: int = MAX_PACK_ROWS, last_alone: bool = False, step: int = 2
) -> list[range]:
    """Rows [0, rows) in batches of ``max_rows``, the rest in descending powers of ``step``.

    ``last_alone``: the last row (the part-filled one) in a batch of its own, so it
    can run narrower (``tail_width``).
    """
    if last_alone and rows > 1:
        return [*row_batches(rows - 1, max_rows, step=step), range(rows - 1, rows)]
    out: list[range] = []
    start = 0
    while rows - start >= max_rows:
        out.append(range(start, start + max_rows))
        start += max_rows
    size = 1
    while size * step <= max_rows:
        size *= step
    while start < rows:
        while size > rows - start:
            size //= step
        out.append(range(start, start + size))
        start += size
    return out


def row_counts(max_rows: int, step: int = 2) -> list[int]:
    """Every batch size ``row_batches`` makes with these arguments, ascending."""
    return sorted(
        {len(b) for n in range(1, 2 * max_rows) for b in row_batches(n, max_rows, step=step)}
    )


def tail_width(used: int, window: int = PACK_WINDOW, eighths: Sequence[int] = (2, 4)) -> int:
    """The narrowest of window and ``eighths`` of it holding ``used`` frames (a lone row)."""
    for e in sorted(eighths):
        if used <= window * e // 8:
            return window * e // 8
    return window


def pack_row_shapes(max_rows: int, window: int = PACK_WINDOW) -> list[tuple[int, int]]:
    """(rows, width) of every flow and decoder call the packed policy can make."""
    top = min(MAX_PACK_ROWS, max_rows)
    narrow = sorted({tail_width(n, window) for n in (1, window // 2)})
    return [(r, window) for r in row_counts(top)] + [(1, w) for w in narrow if w < window]


def id_row_top(max_rows: int, window: int = ID_WINDOW, budget: int = ID_BUDGET) -> int:
    """Rows in a full duration batch: a power of two within ``max_rows`` and ``budget``."""
    top = max(1, min(max_rows, budget // window))
    return 1 << (top.bit_length() - 1)


def id_row_shapes(
    max_rows: int, window: int = ID_WINDOW, budget: int = ID_BUDGET
) -> list[tuple[int, int]]:
    """(rows, width) of every duration call the packed policy can make, but for a
    sentence longer than ``window`` (it runs alone, padded)."""
    rows = row_counts(id_row_top(max_rows, window, budget), ID_ROW_STEP)
    narrow = sorted({window * e // 8 for e in ID_TAIL_EIGHTHS})
    return [(r, window) for r in rows] + [(1, w) for w in narrow if w < window]


IdRow = list[tuple[int, int]]
"""(utterance index, offset) of each sentence in one duration-stage row."""


def id_rows(
    lengths: Sequence[int],
    max_rows: int,
    gap: int,
    window: int = ID_WINDOW,
    budget: int = ID_BUDGET,
) -> list[tuple[int, list[IdRow]]]:
    """Sentences of ``lengths`` ids packed into rows for the duration stage: (width, rows).

    Sentences go first-fit, longest first, ``gap`` ids apart, into rows of ``window``
    ids (never cut: attention spans the whole sentence). Row batches are the largest
    power of two within ``max_rows`` and ``budget``, then powers of four below
    (``ID_ROW_STEP``), the part-filled last row alone; a lone row narrows to
    ``ID_TAIL_EIGHTHS`` of the window (``tail_width``): as the flow's rows, a handful
    of shapes for a whole book. A sentence longer than ``window`` runs alone, padded
    to ``ID_PAD_LENGTHS``.
    """
    fits = [i for i, n in enumerate(lengths) if n <= window]
    count, pieces = pack_rows([lengths[i] for i in fits], window, gap, 0)
    rows: list[IdRow] = [[] for _ in range(count)]
    used = [0] * count
    for p in pieces:
        rows[p.row].append((fits[p.item], p.offset))
        used[p.row] = max(used[p.row], p.offset + p.stop - p.start)
    top = id_row_top(max_rows, window, budget)
    out: list[tuple[int, list[IdRow]]] = []
    for batch in row_batches(count, top, last_alone=True, step=ID_ROW_STEP):
        width = window if len(batch) > 1 else tail_width(used[batch[0]], window, ID_TAIL_EIGHTHS)
        out.append((width, [rows[r] for r in batch]))
    for i, n in enumerate(lengths):
        if n > window:
            out.append((padded(n, ID_PAD_LENGTHS, 256), [[(i, 0)]]))
    return out
