"""Sentences and buckets.

A bucket is up to ``bucket_size`` consecutive sentences of one paragraph (and
under the phoneme cap). Buckets never span paragraphs, so editing a paragraph
changes only that paragraph's buckets: the rest keep their hash and their audio.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

# espeak-ng writes about 1.5 phoneme symbols per character of English text
# (stress marks and spaces included); used before the real phonemes exist.
PHONEMES_PER_CHAR = 1.5

# End punctuation, closing quotes or brackets, then space before something that does
# not start lower-case ("Because... it was late" stays one sentence).
_SENTENCE_END = re.compile(r"""[.!?…]+["'”’»)\]]*(\s+)(?=["'“‘«(\[]*[^\sa-z])""")
_INITIAL = re.compile(r"(?:^|\s)[A-Z]\.$")
_CLAUSE = re.compile(r"(?<=[,;:])\s+")


def estimate_phonemes(text: str) -> int:
    return int(len(text) * PHONEMES_PER_CHAR) + 2


def split_sentences(paragraph: str, max_phonemes: int) -> list[str]:
    """Sentences of a normalised paragraph, none estimated above ``max_phonemes``.

    A line break always ends a sentence: the normaliser writes one after each list item,
    table row and line of code (text/blocks.py).
    """
    sentences: list[str] = []
    for line in paragraph.split("\n"):
        for piece in _sentence_pieces(line):
            sentences.extend(_cap(piece, max_phonemes))
    return sentences


def source_sentences(
    source: str, sentences: list[str], read: Callable[[str], list[str]]
) -> list[str]:
    """The book's own text for each spoken sentence, as a list parallel to ``sentences``.

    ``read`` turns source text into spoken sentences (normalise, then split). The source
    is cut where the book's sentences end, and consecutive pieces are joined until they
    read as exactly the next spoken sentences; a piece that reads as several sentences
    (a run-on cut at clauses, "Dr." that did not end one) is one unit: its first
    sentence carries the text, the others "" (they continue it). What cannot be matched
    is one unit with the text that is left, so every spoken sentence belongs to one.
    """
    pieces = [p for line in source.split("\n") for p in _sentence_pieces(line)]
    out: list[str] = []
    group: list[str] = []
    for piece in pieces:
        group.append(piece)
        text = " ".join(group)
        got = read(text)
        i = len(out)
        if got and got == sentences[i : i + len(got)]:
            out += [text] + [""] * (len(got) - 1)
            group = []
    rest = " ".join(group)
    if len(out) < len(sentences):
        out += [rest or " ".join(sentences[len(out) :])] + [""] * (len(sentences) - len(out) - 1)
    elif rest and out:  # text that is not read (a lone symbol) joins the unit before it
        first = max(i for i, s in enumerate(out) if s)
        out[first] = f"{out[first]} {rest}"
    return out


def _sentence_pieces(paragraph: str) -> Iterator[str]:
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        candidate = paragraph[start : match.start(1)].strip()
        # "J. R. R. Tolkien": a lone capital before the dot is an initial, not an end.
        if _INITIAL.search(candidate) or not candidate:
            continue
        yield candidate
        start = match.end(1)
    rest = paragraph[start:].strip()
    if rest:
        yield rest


def _cap(sentence: str, max_phonemes: int) -> list[str]:
    """Split a run-on at clause punctuation, then at words, until every part fits."""
    if estimate_phonemes(sentence) <= max_phonemes:
        return [sentence]
    clauses = [c for c in _CLAUSE.split(sentence) if c]
    if len(clauses) > 1:
        return _pack(clauses, max_phonemes, fallback=_split_words)
    return _split_words(sentence, max_phonemes)


def _split_words(text: str, max_phonemes: int) -> list[str]:
    words = text.split()
    if len(words) <= 1:  # one enormous "word": cut it by characters
        size = max(1, int(max_phonemes / PHONEMES_PER_CHAR) - 2)
        return [text[i : i + size] for i in range(0, len(text), size)]
    return _pack(words, max_phonemes, fallback=_split_words)


def _pack(parts: list[str], max_phonemes: int, fallback: object) -> list[str]:
    out: list[str] = []
    current = ""
    for part in parts:
        joined = f"{current} {part}" if current else part
        if estimate_phonemes(joined) <= max_phonemes:
            current = joined
            continue
        if current:
            out.append(current)
        if estimate_phonemes(part) > max_phonemes:
            out.extend(_split_words(part, max_phonemes))
            current = ""
        else:
            current = part
    if current:
        out.append(current)
    return out


@dataclass(frozen=True)
class Bucket:
    """Consecutive sentences of one paragraph: the unit of synthesis and checkpointing."""

    index: int
    """Position in the plan (0-based)."""
    id: str
    """Stable name: chapter, paragraph and part, e.g. ``c003-p0012-0``."""
    chapter: int
    """Index into the book's chapters (0-based)."""
    paragraph: int
    """Paragraph within the chapter (0-based; the spoken title is paragraph 0 when read)."""
    part: int
    """Which bucket of the paragraph (0-based)."""
    sentences: tuple[str, ...]
    hash: str
    """Content hash: sentences plus everything that changes their audio."""
    sources: tuple[str, ...] = ()
    """The book's text of each sentence (captions, read-along); "" continues the one before
    (one sentence of the book read as several). Not in the hash: it does not change audio."""

    @property
    def chars(self) -> int:
        return sum(len(s) for s in self.sentences)


def bucket_hash(fingerprint: str, sentences: Iterable[str]) -> str:
    digest = hashlib.sha256(fingerprint.encode())
    for sentence in sentences:
        digest.update(b"\x1f")
        digest.update(sentence.encode())
    return digest.hexdigest()[:32]


def paragraph_buckets(sentences: list[str], bucket_size: int, max_phonemes: int) -> list[list[str]]:
    """Group one paragraph's sentences: at most ``bucket_size`` each, under the phoneme cap."""
    groups: list[list[str]] = []
    current: list[str] = []
    budget = 0
    for sentence in sentences:
        cost = estimate_phonemes(sentence)
        if current and (len(current) >= bucket_size or budget + cost > max_phonemes):
            groups.append(current)
            current, budget = [], 0
        current.append(sentence)
        budget += cost
    if current:
        groups.append(current)
    return groups
