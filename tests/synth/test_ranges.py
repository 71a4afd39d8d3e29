"""Bucket ranges (synth/ranges.py): cut where calls begin, each text made by one range."""

from __future__ import annotations

from voicekit.synth.calls import call_starts, gather_calls, group_calls
from voicekit.synth.ranges import range_buckets, split_ranges
from voicekit.text.sentences import Bucket


def _bucket(k: int, sentences: int, text: str | None = None) -> Bucket:
    digest = f"{hash(text) & 0xFFFF:064x}" if text else f"{k:064x}"
    return Bucket(k, f"b{k}", 0, k, 0, tuple(f"s{i}" for i in range(sentences)), digest)


def test_ranges_start_where_calls_start_and_share_the_sentences() -> None:
    sizes = [3, 2, 5, 1, 1, 1, 4, 4, 2, 2]
    buckets = [_bucket(k, n) for k, n in enumerate(sizes)]
    calls = [g[0].index for g in group_calls(buckets, per_call=4)]  # [0, 2, 3, 6, 7, 8]
    starts = split_ranges(sizes, parts=3, per_call=4)
    assert starts[0] == 0 and len(starts) == 3 and set(starts) <= set(calls)
    shares = [sum(sizes[a:b]) for a, b in zip(starts, [*starts[1:], len(sizes)], strict=True)]
    assert max(shares) - min(shares) <= 5  # 25 sentences in three: 10, 7, 8 here
    # never more ranges than calls, and none at all for nothing to make
    assert split_ranges([1, 1], parts=8, per_call=1) == [0, 1]
    assert split_ranges([1, 1, 1], parts=4, per_call=8) == [0]
    assert split_ranges([], parts=4, per_call=1) == []


def test_the_plan_and_the_phonemized_stream_are_cut_into_the_same_calls() -> None:
    """Ranges cut the plan; the in-process path cuts phonemized buckets as they come.
    A range made apart makes a local run's calls only if both cut alike."""
    sizes = [3, 2, 5, 0, 1, 1, 4, 4, 2, 2, 7]
    buckets = [_bucket(k, n) for k, n in enumerate(sizes)]
    for per_call in (1, 4, 6, 64):
        planned = [[b.index for b in g] for g in group_calls(buckets, per_call)]
        streamed = gather_calls(((b, [None] * len(b.sentences)) for b in buckets), per_call)
        assert [[b.index for b, _ in g] for g in streamed] == planned
        assert call_starts(sizes, per_call) == [g[0] for g in planned]


def test_a_text_met_twice_is_made_by_the_range_of_its_first_place() -> None:
    buckets = [_bucket(0, 1, "a"), _bucket(1, 1, "b"), _bucket(2, 1, "a"), _bucket(3, 1, "c"),
               _bucket(4, 1, "c")]  # fmt: skip
    assert [b.index for b in range_buckets(buckets, 0, 2)] == [0, 1]
    assert [b.index for b in range_buckets(buckets, 2, 5)] == [3]  # "a" is the first range's
    made = [b.hash for r in ((0, 2), (2, 5)) for b in range_buckets(buckets, *r)]
    assert len(made) == len(set(made)) == 3
