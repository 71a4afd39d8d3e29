from __future__ import annotations

from voicekit.text.sentences import (
    bucket_hash,
    estimate_phonemes,
    paragraph_buckets,
    split_sentences,
)


def test_sentences_keep_closing_quotes_and_brackets() -> None:
    text = "He said “Hello.” Then (quietly.) she left! Why? Because."
    assert split_sentences(text, 400) == [
        "He said “Hello.”", "Then (quietly.) she left!", "Why?", "Because."]
    assert split_sentences('He said "Hello." Then she left! Why? Because.', 400) == [
        'He said "Hello."', "Then she left!", "Why?", "Because."]


def test_initials_and_lowercase_continuations_do_not_end_sentences() -> None:
    assert split_sentences("J. R. R. Tolkien wrote. Because... it was late.", 400) == [
        "J. R. R. Tolkien wrote.", "Because... it was late."]


def test_decimal_points_do_not_end_sentences() -> None:
    assert split_sentences("It was 3.14 long. Next.", 400) == ["It was 3.14 long.", "Next."]


def test_long_run_on_splits_at_clauses_first() -> None:
    clause = "the rain fell on the quiet roofs of the sleeping town"
    text = ", ".join([clause] * 12) + "."
    parts = split_sentences(text, 200)
    assert len(parts) > 1
    assert all(estimate_phonemes(p) <= 200 for p in parts)
    # every cut is at a comma: each part but the last ends with one
    assert all(p.endswith(",") for p in parts[:-1])
    assert " ".join(parts) == text


def test_run_on_without_punctuation_splits_at_words() -> None:
    text = " ".join(["word"] * 300)
    parts = split_sentences(text, 100)
    assert all(estimate_phonemes(p) <= 100 for p in parts)
    assert " ".join(parts) == text


def test_one_enormous_word_is_cut_by_characters() -> None:
    parts = split_sentences("x" * 1000, 100)
    assert all(estimate_phonemes(p) <= 100 for p in parts)
    assert "".join(parts) == "x" * 1000


def test_buckets_respect_size_and_phoneme_cap() -> None:
    sentences = [f"Sentence number {i} is here." for i in range(14)]
    groups = paragraph_buckets(sentences, bucket_size=6, max_phonemes=10_000)
    assert [len(g) for g in groups] == [6, 6, 2]
    assert [s for g in groups for s in g] == sentences
    capped = paragraph_buckets(sentences, bucket_size=6, max_phonemes=90)
    assert all(sum(estimate_phonemes(s) for s in g) <= 90 or len(g) == 1 for g in capped)
    assert [s for g in capped for s in g] == sentences


def test_bucket_hash_depends_on_text_order_and_fingerprint() -> None:
    a = bucket_hash("fp", ["One.", "Two."])
    assert a == bucket_hash("fp", ["One.", "Two."])
    assert a != bucket_hash("fp", ["Two.", "One."])
    assert a != bucket_hash("fp", ["One. Two."])
    assert a != bucket_hash("other", ["One.", "Two."])


def test_source_sentences_keep_the_books_text_beside_each_reading() -> None:
    from voicekit.text.normalize import normalize_text
    from voicekit.text.sentences import source_sentences

    def read(text: str) -> list[str]:
        return split_sentences(normalize_text(text, "en"), 60)

    first = "Mr. Ellis paid $14.50 on the 3rd."
    second = "He left, and the door, which was old, creaked loudly."
    spoken = read(f"{first} {second}")
    texts = source_sentences(f"{first} {second}", spoken, read)
    assert len(texts) == len(spoken) > 2  # long sentences are cut at their clauses
    assert [t for t in texts if t] == [first, second]  # the cut parts ("") continue them
    assert texts[0] == first and texts[len(read(first))] == second


def test_source_sentences_that_cannot_be_matched_stay_one_unit() -> None:
    from voicekit.text.sentences import source_sentences

    texts = source_sentences("One. Two.", ["Uno.", "Dos."], lambda t: [t.upper()])
    assert texts == ["One. Two.", ""]
