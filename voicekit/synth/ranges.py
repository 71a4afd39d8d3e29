"""Bucket ranges: one book's synthesis cut into contiguous parts that workers make apart.

A range is a slice ``[start, stop)`` of the plan's buckets (book order). Its worker
makes the buckets of that slice the job folder lacks, each text once: a bucket whose
text came earlier in the book belongs to the range that holds the earlier one, so no
two ranges make the same segment. Segments are named by content hash, written
atomically and seeded per bucket (synth/feed.bucket_utterances), so a range's segment
is the one a local run makes; assembling the book afterwards (a normal run, which then
finds every segment) gives the local run's bytes.

Ranges are cut only where a local run's calls begin (synth/calls.call_starts): each
range then makes the calls the local run makes. The backends promise that anyway (a
batched sentence has the samples it has alone: docs/DESIGN-NOTES.md, "The noise
contract" and "The torch backend"), so this is a second guard, not the only one.
"""

from __future__ import annotations

from collections.abc import Sequence

from voicekit.synth.calls import call_starts
from voicekit.text.sentences import Bucket


def range_buckets(buckets: Sequence[Bucket], start: int, stop: int) -> list[Bucket]:
    """The buckets of ``[start, stop)`` a range makes: each text at its first place only."""
    seen = {b.hash for b in buckets[:start]}
    mine: list[Bucket] = []
    for bucket in buckets[start:stop]:
        if bucket.hash not in seen:
            seen.add(bucket.hash)
            mine.append(bucket)
    return mine


def split_ranges(sentences: Sequence[int], parts: int, per_call: int) -> list[int]:
    """Where each of at most ``parts`` ranges begins (indices into ``sentences``).

    ``sentences``: each bucket still to make, in book order, by its sentence count.
    Cuts fall where calls of ``per_call`` sentences begin, as near as they can to equal
    shares of the sentences; a book of fewer calls than ``parts`` gets one range a call.
    """
    calls = call_starts(sentences, per_call)
    if not calls:
        return []
    parts = max(1, min(parts, len(calls)))
    before: list[int] = []  # sentences before each call
    total = 0
    for i, count in enumerate(sentences):
        if len(before) < len(calls) and calls[len(before)] == i:
            before.append(total)
        total += count
    starts = [0]
    for k in range(1, parts):
        target = total * k / parts
        # the nearest call start past the last cut, leaving a call for each range after it
        last = len(calls) - (parts - k)
        first = calls.index(starts[-1]) + 1
        best = min(range(first, last + 1), key=lambda c: abs(before[c] - target))
        starts.append(calls[best])
    return starts
