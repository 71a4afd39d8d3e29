"""The plan: which chapters, which buckets, and estimates. ``--dry-run`` stops here."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib import metadata

from voicekit.errors import InputError
from voicekit.settings import SynthSettings
from voicekit.synth.assemble import pause_before
from voicekit.text.blocks import Reader, group_blocks, title_key
from voicekit.text.model import HEADING, Book, Chapter, block_kind
from voicekit.text.normalize import NORMALIZER_VERSION, language_of
from voicekit.text.sentences import Bucket, bucket_hash, paragraph_buckets, split_sentences

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

    @property
    def chars(self) -> int:
        return sum(b.chars for b in self.buckets)

    @property
    def sentences(self) -> int:
        return sum(len(b.sentences) for b in self.buckets)

    @property
    def est_audio_seconds(self) -> float:
        return sum(c.est_seconds(self.length_scale) for c in self.chapters)


def silences(settings: SynthSettings) -> dict[str, float]:
    """Seconds of pause by kind, as the job manifest hands them to the assembly."""
    return {
        "sentence": settings.sentence_silence,
        "paragraph": settings.paragraph_silence,
        "chapter": settings.chapter_silence,
    }


def audio_fingerprint(
    voice_hash: str,
    backend: str,
    settings: SynthSettings,
    scales: tuple[float, float, float],
    speaker: int | None,
) -> str:
    """Everything besides the text that changes a bucket's audio."""
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
) -> Plan:
    lang = language_of(language)
    pauses_by_kind = silences(settings)
    buckets: list[Bucket] = []
    planned: list[PlannedChapter] = []
    warnings: list[str] = []
    for ci, chapter in enumerate(book.chapters):
        first = len(buckets)
        chars = 0
        pauses = 0.0
        if chapter.included:
            reader = Reader.from_settings(settings, lang)
            spoken = spoken_paragraphs(chapter, settings, reader)
            warnings.extend(
                f"chapter {chapter.index}: {w}" for w in dict.fromkeys(reader.warnings)
            )
            for pi, paragraph in enumerate(spoken):
                sentences = split_sentences(paragraph, settings.max_sentence_phonemes)
                groups = paragraph_buckets(
                    sentences, settings.bucket_size, settings.max_bucket_phonemes
                )
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
                    )
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
    )


def spoken_paragraphs(chapter: Chapter, settings: SynthSettings, reader: Reader) -> list[str]:
    """The chapter as the voice is given it: normalised paragraphs, the title first.

    The chapter's own heading is not read again after the spoken title when it is the
    same title ("1. About this manual" after "About this manual"), and a run of code
    blocks that each became the same note is said once.
    """
    paragraphs = []
    body = chapter.paragraphs
    if settings.speak_titles and chapter.title and chapter.kind != "credits":  # prod-b
        paragraphs.append(reader.title(chapter.title))
        key = title_key(chapter.title)
        while body and _repeats_title(body[0], key):
            body = body[1:]
    for paragraph in group_blocks(body):
        spoken = reader.paragraph(paragraph).strip()
        if spoken and not (paragraphs and spoken == paragraphs[-1] == reader.notes()[0]):
            paragraphs.append(spoken)
    return paragraphs


def _repeats_title(paragraph: str, key: str) -> bool:
    kind, text = block_kind(paragraph)
    # an unmarked first paragraph counts when it is short: a heading the source did not mark
    if kind not in ("", HEADING) or (not kind and len(text) > 120):
        return False
    return bool(key) and title_key(text) == key
