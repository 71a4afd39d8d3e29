"""The plan: which chapters, which buckets, and estimates. ``--dry-run`` stops here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import metadata

from voicekit.errors import InputError
from voicekit.settings import SynthSettings
from voicekit.synth.assemble import pause_before
from voicekit.text.blocks import Reader, group_blocks, looks_like_code, title_key
from voicekit.text.lexicon import Lexicon
from voicekit.text.model import (
    CODE,
    CODE_CLOSE,
    CODE_OPEN,
    HEADING,
    LIST,
    TABLE,
    Book,
    Chapter,
    block_kind,
)
from voicekit.text.normalize import NORMALIZER_VERSION, language_of, normalize_text
from voicekit.text.sentences import (
    Bucket,
    bucket_hash,
    paragraph_buckets,
    source_sentences,
    split_sentences,
)

# Characters of normalised text per second of speech, pauses excluded, at
# length_scale 1: 8,218 characters in 434.5 s for examples/harbour.md with the
# bundled voice (docs/BENCHMARKS.md).
CHARS_PER_AUDIO_SECOND = 18.9


@dataclass(frozen=True)
class PlannedChapter:
    index: int
    title: str
    words: int
    included: bool
    kind: str
    chars: int
    buckets: int
    pause_seconds: float = 0.0
    """The pauses the assembly will add: between sentences, paragraphs, and before it."""

    def est_seconds(self, length_scale: float = 1.0) -> float:
        if not self.included:
            return 0.0
        return self.chars / CHARS_PER_AUDIO_SECOND * length_scale + self.pause_seconds


@dataclass
class Plan:
    book: Book
    settings: SynthSettings
    fingerprint: str
    buckets: list[Bucket]
    chapters: list[PlannedChapter]
    language: str
    length_scale: float = 1.0
    warnings: list[str] = field(default_factory=list)
    """What the reading skipped, by chapter (text in another script)."""
    lexicon: dict[str, int] = field(default_factory=dict)
    """How often each lexicon entry matched, by its word."""
    seconds: float = 0.0
    """How long the text took to plan (normalising, sentences, buckets): the "text" stage."""

    @property
    def chars(self) -> int:
        return sum(b.chars for b in self.buckets)

    @property
    def sentences(self) -> int:
        return sum(len(b.sentences) for b in self.buckets)

    @property
    def est_audio_seconds(self) -> float:
        return sum(c.est_seconds(self.length_scale) for c in self.chapters)


def audio_fingerprint(
    voice_hash: str,
    backend: str,
    settings: SynthSettings,
    scales: tuple[float, float, float],
    speaker: int | None,
    graphs: str = "",
) -> str:
    """Everything besides the text that changes a bucket's audio.

    ``graphs`` names a rewrite of the voice's graphs a backend runs instead of its own
    (``backends.ort.CPU_GRAPHS``); empty, it leaves the fingerprint as it always was.
    """
    try:
        phonemizer = metadata.version("piper-tts")
    except metadata.PackageNotFoundError:  # pragma: no cover
        phonemizer = "unknown"
    data = {
        "voice": voice_hash,
        "backend": backend,
        "precision": settings.precision,
        "seed": settings.seed,
        "scales": [round(s, 6) for s in scales],
        "speaker": speaker,
        "normalizer": NORMALIZER_VERSION,
        "phonemizer": phonemizer,
        "max_sentence_phonemes": settings.max_sentence_phonemes,
    }
    if graphs:
        data["graphs"] = graphs
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:32]


def parse_chapter_spec(spec: str, count: int) -> set[int]:
    """``"1-3,7"`` to {1, 2, 3, 7}; indices are 1-based and must exist."""
    chosen: set[int] = set()
    for part in spec.replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        try:
            start = int(lo)
            stop = int(hi) if sep and hi else (count if sep else start)
        except ValueError as exc:
            raise InputError(
                f"--chapters '{spec}': '{part}' is not a number or range (use e.g. 1-3,7)"
            ) from exc
        if start < 1 or stop > count or start > stop:
            raise InputError(f"--chapters '{spec}': {part} is outside 1-{count}")
        chosen.update(range(start, stop + 1))
    if not chosen:
        raise InputError(f"--chapters '{spec}' selects nothing")
    return chosen


def select_chapters(book: Book, spec: str | None, all_chapters: bool) -> None:
    """Mark chapters included: by spec, or everything with --all-chapters, else the defaults."""
    if spec:
        chosen = parse_chapter_spec(spec, len(book.chapters))
        for chapter in book.chapters:
            chapter.included = chapter.index in chosen
    elif all_chapters:
        for chapter in book.chapters:
            chapter.included = True
    if not any(c.included and c.paragraphs for c in book.chapters):
        raise InputError("no chapter with text is selected")


def build_plan(
    book: Book,
    settings: SynthSettings,
    *,
    language: str,
    fingerprint: str,
    length_scale: float = 1.0,
    lexicon: Lexicon | None = None,
) -> Plan:
    """Chapters into buckets; ``lexicon`` rewrites each normalised sentence (its hash with it)."""
    lexicon = lexicon or Lexicon()
    lexicon.hits.clear()
    lang = language_of(language)
    pauses_by_kind = settings.silences()
    buckets: list[Bucket] = []
    planned: list[PlannedChapter] = []
    warnings: list[str] = []
    for ci, chapter in enumerate(book.chapters):
        first = len(buckets)
        chars = 0
        pauses = 0.0
        if chapter.included:
            reader = Reader.from_settings(settings, lang)
            spoken = spoken_blocks(chapter, settings, reader)
            warnings.extend(f"chapter {chapter.index}: {w}" for w in dict.fromkeys(reader.warnings))
            for pi, (source, paragraph) in enumerate(spoken):
                read = split_sentences(paragraph, settings.max_sentence_phonemes)
                texts = paragraph_sources(source, read, settings, reader)
                sentences = [lexicon.apply(sentence) for sentence in read]
                groups = paragraph_buckets(
                    sentences, settings.bucket_size, settings.max_bucket_phonemes
                )
                done = 0
                for part, group in enumerate(groups):
                    # a chapter's pause counts towards the chapter it leads into
                    prev = (buckets[-1].chapter, buckets[-1].paragraph) if buckets else None
                    pauses += pause_before(pauses_by_kind, prev, (ci, pi))
                    pauses += pauses_by_kind["sentence"] * (len(group) - 1)
                    bucket = Bucket(
                        index=len(buckets),
                        id=f"c{ci + 1:03d}-p{pi:04d}-{part}",
                        chapter=ci,
                        paragraph=pi,
                        part=part,
                        sentences=tuple(group),
                        hash=bucket_hash(fingerprint, group),
                        sources=tuple(texts[done : done + len(group)]),
                    )
                    done += len(group)
                    buckets.append(bucket)
                    chars += bucket.chars
        else:
            chars = sum(len(p) for p in chapter.paragraphs)
        planned.append(
            PlannedChapter(
                index=chapter.index,
                title=chapter.title,
                words=chapter.words,
                included=chapter.included,
                kind=chapter.kind,
                chars=chars,
                buckets=len(buckets) - first,
                pause_seconds=pauses,
            )
        )
    if not buckets:
        raise InputError("nothing to read: the selected text is empty after normalisation")
    return Plan(
        book=book,
        settings=settings,
        fingerprint=fingerprint,
        buckets=buckets,
        chapters=planned,
        language=language,
        length_scale=length_scale,
        warnings=warnings,
        lexicon=lexicon.matched(),
    )


def paragraph_sources(
    source: str, sentences: list[str], settings: SynthSettings, reader: Reader
) -> list[str]:
    """The book's text for each of a paragraph's spoken sentences (``Bucket.sources``).

    Headings are one unit; code and tables, which are read as something else (a note,
    symbols in words), show what is said.
    """
    if not sentences:
        return []
    kind, body = block_kind(source)
    if kind == HEADING:
        return [body] + [""] * (len(sentences) - 1)
    if kind in (CODE, TABLE) or (not kind and looks_like_code(body)):
        return list(sentences)
    cap = settings.max_sentence_phonemes

    def read(text: str) -> list[str]:
        if kind == LIST:  # one item: read as the list reads it (a full stop added)
            return split_sentences(reader.paragraph(LIST + text), cap)
        return split_sentences(normalize_text(text, reader.lang, reader.reading), cap)

    seen = len(reader.warnings)
    try:
        texts = source_sentences(body, sentences, read)
    finally:
        del reader.warnings[seen:]  # the plan has said these already
    return [t.replace(CODE_OPEN, "").replace(CODE_CLOSE, "") for t in texts]


def spoken_paragraphs(chapter: Chapter, settings: SynthSettings, reader: Reader) -> list[str]:
    """The chapter as the voice is given it: normalised paragraphs, the title first."""
    return [spoken for _, spoken in spoken_blocks(chapter, settings, reader)]


def spoken_blocks(
    chapter: Chapter, settings: SynthSettings, reader: Reader
) -> list[tuple[str, str]]:
    """The chapter as the voice is given it: (source, normalised) paragraphs, the title first.

    The chapter's own heading is not read again after the spoken title when it is the
    same title ("1. About this manual" after "About this manual"), and a run of code
    blocks that each became the same note is said once.
    """
    paragraphs: list[tuple[str, str]] = []
    body = chapter.paragraphs
    if settings.speak_titles and chapter.title and chapter.kind != "credits":
        paragraphs.append((HEADING + chapter.title, reader.title(chapter.title)))
        key = title_key(chapter.title)
        while body and _repeats_title(body[0], key):
            body = body[1:]
    for paragraph in group_blocks(body):
        spoken = reader.paragraph(paragraph).strip()
        if spoken and not (paragraphs and spoken == paragraphs[-1][1] == reader.notes()[0]):
            paragraphs.append((paragraph, spoken))
    return paragraphs


def _repeats_title(paragraph: str, key: str) -> bool:
    kind, text = block_kind(paragraph)
    # an unmarked first paragraph counts when it is short: a heading the source did not mark
    if kind not in ("", HEADING) or (not kind and len(text) > 120):
        return False
    return bool(key) and title_key(text) == key
