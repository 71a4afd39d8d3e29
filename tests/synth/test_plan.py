from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.synth.manifests import make_manifest
from voicekit.errors import InputError
from voicekit.settings import SynthSettings
from voicekit.synth.assemble import build_timeline
from voicekit.synth.job import Job
from voicekit.synth.manifest import ManifestBucket, ManifestChapter
from voicekit.synth.plan import build_plan, parse_chapter_spec, select_chapters
from voicekit.text.model import Book, BookMeta, Chapter


def make_book(*chapters: list[str], titles: list[str] | None = None) -> Book:
    titles = titles or [f"Part {i + 1}" for i in range(len(chapters))]
    return Book(BookMeta(title="T"), [Chapter(i + 1, titles[i], list(paras))
                                      for i, paras in enumerate(chapters)])


def plan(book: Book, **settings: object):  # type: ignore[no-untyped-def]
    return build_plan(book, SynthSettings(**settings), language="en_US", fingerprint="fp")


def test_chapter_spec() -> None:
    assert parse_chapter_spec("1-3,7", 9) == {1, 2, 3, 7}
    assert parse_chapter_spec(" 2 , 4- ", 5) == {2, 4, 5}
    for bad in ("0", "3-1", "10", "a-b", ","):
        with pytest.raises(InputError, match="--chapters"):
            parse_chapter_spec(bad, 9)


def test_select_chapters_and_all_chapters() -> None:
    book = make_book(["a."], ["b."], ["c."])
    book.chapters[0].included = False
    book.chapters[0].kind = "license"
    select_chapters(book, None, all_chapters=False)
    assert [c.included for c in book.chapters] == [False, True, True]
    select_chapters(book, None, all_chapters=True)
    assert all(c.included for c in book.chapters)
    select_chapters(book, "1,3", all_chapters=False)
    assert [c.included for c in book.chapters] == [True, False, True]


def test_buckets_are_paragraph_aligned_with_stable_ids() -> None:
    paras = ["One. Two. Three.", "Four.", " ".join(f"S{i} is here." for i in range(8))]
    result = plan(make_book(paras), bucket_size=3, speak_titles=False)
    assert [(b.id, len(b.sentences)) for b in result.buckets] == [
        ("c001-p0000-0", 3), ("c001-p0001-0", 1), ("c001-p0002-0", 3), ("c001-p0002-1", 3),
        ("c001-p0002-2", 2)]
    assert [b.index for b in result.buckets] == list(range(5))


def test_titles_are_spoken_first_and_normalised() -> None:
    result = plan(make_book(["It began."], titles=["Chapter XII"]))
    assert result.buckets[0].sentences == ("Chapter twelve",)
    assert result.buckets[1].sentences == ("It began.",)


def test_editing_one_paragraph_changes_only_its_buckets() -> None:
    before = ["First para. Still first.", "Second para here.", "Third one. Yes."]
    after = ["First para. Still first.", "Second para, now longer. With two sentences.",
             "Third one. Yes."]
    a = plan(make_book(before))
    b = plan(make_book(after))
    changed = {x.hash for x in b.buckets} - {x.hash for x in a.buckets}
    assert len(changed) == 1
    assert [x.id for x in b.buckets if x.hash in changed] == ["c001-p0002-0"]


def test_skipped_chapters_make_no_buckets_but_are_listed() -> None:
    book = make_book(["a."], ["b."])
    book.chapters[0].included = False
    result = plan(book)
    assert {b.chapter for b in result.buckets} == {1}
    assert [(c.index, c.included) for c in result.chapters] == [(1, False), (2, True)]
    assert result.chapters[0].est_seconds() == 0


def test_fingerprint_changes_every_hash() -> None:
    book = make_book(["Same text."])
    a = build_plan(book, SynthSettings(), language="en", fingerprint="one")
    b = build_plan(book, SynthSettings(), language="en", fingerprint="two")
    assert a.buckets[0].sentences == b.buckets[0].sentences
    assert a.buckets[0].hash != b.buckets[0].hash


def test_nothing_to_read_is_an_error() -> None:
    with pytest.raises(InputError, match="nothing to read"):
        plan(make_book(["   "], titles=[""]))


def test_estimates_count_the_pauses_the_assembly_adds() -> None:
    book = make_book(["One. Two. Three.", "Four."], ["Five. Six."])
    settings = dict(sentence_silence=0.5, paragraph_silence=2.0, chapter_silence=10.0)
    result = plan(book, **settings)
    first, second = result.chapters
    # chapter 1: title, 3 sentences (2 gaps), 1 sentence -> 2 paragraph breaks, 2 sentence gaps
    assert first.pause_seconds == pytest.approx(2 * 2.0 + 2 * 0.5)
    # chapter 2: the chapter pause before it, title, 2 sentences (1 gap)
    assert second.pause_seconds == pytest.approx(10.0 + 2.0 + 0.5)


def test_planned_pauses_are_the_pauses_the_assembly_writes(tmp_path: Path) -> None:
    # a skipped chapter between read ones, paragraphs split over several buckets, titles
    book = make_book(["One. Two. Three.", "Four."], ["Skipped."], ["Five. Six. Seven.", "Eight."])
    book.chapters[1].included = False
    settings = SynthSettings(sentence_silence=0.25, paragraph_silence=0.5, chapter_silence=2.0,
                             bucket_size=2)
    result = build_plan(book, settings, language="en_US", fingerprint="fp")
    assert any(b.part for b in result.buckets)  # a paragraph in more than one bucket
    rate, sentence_samples = 1000, 7
    with Job.open(tmp_path / "job") as job:
        for b in result.buckets:
            lengths = [sentence_samples] * len(b.sentences)
            job.write(b.hash, np.zeros(sum(lengths), np.int16), lengths)
    manifest = make_manifest(
        sample_rate=rate,
        silences=settings.silences(),
        chapters={i: ManifestChapter(c.index, c.title) for i, c in enumerate(book.chapters)},
        buckets=[ManifestBucket(b.id, b.hash, b.chapter, b.paragraph, len(b.sentences))
                 for b in result.buckets],
    )
    timeline = build_timeline(tmp_path / "job", manifest)
    written = timeline.total - sentence_samples * result.sentences
    planned = sum(c.pause_seconds for c in result.chapters)
    assert written == round(planned * rate)
    # one chapter break, 4 paragraph breaks (titles are paragraphs), 4 sentence gaps
    assert planned == pytest.approx(2.0 + 4 * 0.5 + 4 * 0.25)
