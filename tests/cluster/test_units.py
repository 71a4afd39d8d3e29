"""Which books are split into ranges, and into how many (no Ray needed)."""

from __future__ import annotations

from voicekit.cluster.units import shares


def test_a_batch_of_many_books_stays_whole_books() -> None:
    assert shares([100, 120, 90, 110], workers=2) == [1, 1, 1, 1]
    assert shares([100, 100], workers=2) == [1, 1]


def test_a_lone_book_gets_every_worker_and_a_giant_its_fair_part() -> None:
    assert shares([500], workers=2) == [2]
    assert shares([500], workers=8) == [8]
    # one book far bigger than the rest: split; the small ones whole
    assert shares([10_000, 100, 100, 100], workers=4) == [4, 1, 1, 1]
    assert shares([0], workers=3) == [3]  # an empty book counts as a word, not a division by 0
