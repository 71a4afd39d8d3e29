"""Captions (``--captions srt,vtt``) from the sentences' real lengths, not an alignment.

voicekit knows where every sentence starts and ends: the job's segments store each
sentence's samples, and the assembly places the pauses (``assemble.py``). A cue is a
sentence of the book as the book writes it (``Bucket.sources``); a sentence too long
to read in two lines of 42 characters is split into several cues, each cut placed at
the quietest moment near where the words fall, so no cue starts or ends in speech.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voicekit.errors import InputError, OutputError, os_error
from voicekit.formats.chapter_files import chapter_files
from voicekit.formats.timeline import Timeline
from voicekit.synth.assemble import pause_before
from voicekit.synth.job import iter_segments
from voicekit.synth.manifest import Manifest
from voicekit.synth.plan import Plan
from voicekit.system.fsutil import replacing

CAPTION_FORMATS = ("srt", "vtt")
LINE_CHARS = 42
"""Characters per caption line (the common broadcast limit)."""
CUE_LINES = 2
"""Lines per cue at most."""
_SEARCH_SECONDS = 0.35
"""How far from where the words fall a cut inside a sentence may move to find quiet."""
_FRAME_SECONDS = 0.02


@dataclass(frozen=True)
class Sentence:
    """One sentence of the book, as heard: where its readings lie in the whole book."""

    chapter: int
    """The plan's chapter position (a key of the manifest's chapters)."""
    paragraph: int
    """The paragraph within the chapter (0 is the spoken title when titles are read)."""
    text: str
    spans: tuple[tuple[int, int], ...]
    """(start, end) samples of each reading it was spoken as (usually one)."""
    audio: tuple[np.ndarray, ...]
    """The PCM of each span."""

    @property
    def start(self) -> int:
        return self.spans[0][0]

    @property
    def end(self) -> int:
        return self.spans[-1][1]


@dataclass(frozen=True)
class Cue:
    chapter: int
    start: int
    """First sample (whole book)."""
    end: int
    text: str
    first_of_sentence: bool = True


def parse_formats(spec: str | None) -> tuple[str, ...]:
    """``"srt,vtt"`` to ("srt", "vtt"); anything else is an InputError."""
    if not spec:
        return ()
    wanted = [p.strip().lower().lstrip(".") for p in spec.split(",") if p.strip()]
    bad = [p for p in wanted if p not in CAPTION_FORMATS]
    if bad or not wanted:
        raise InputError(
            f"--captions '{spec}': {bad[0] if bad else 'nothing'} is not a caption format",
            hint=f"use {', '.join(CAPTION_FORMATS)} or both, comma-separated",
        )
    return tuple(dict.fromkeys(wanted))


def book_sentences(folder: Path, manifest: Manifest, plan: Plan) -> Iterator[Sentence]:
    """Every sentence of the book in order, with its place in the audio (as assembled)."""
    rate = manifest.sample_rate
    sentence_gap = round(manifest.silences["sentence"] * rate)
    pos = 0
    prev = None
    pending: list[tuple[tuple[int, int], str, int, int, np.ndarray]] = []
    segments = iter_segments(folder, [b.hash for b in manifest.buckets])
    for bucket, planned, segment in zip(manifest.buckets, plan.buckets, segments, strict=True):
        if planned.hash != bucket.hash:
            raise InputError(f"the plan and the job disagree at bucket {bucket.id}")
        place = None if prev is None else (prev.chapter, prev.paragraph)
        pause = pause_before(manifest.silences, place, (bucket.chapter, bucket.paragraph))
        pos += round(pause * rate)
        offset = 0
        sources = planned.sources or planned.sentences
        for i, (length, text) in enumerate(zip(segment.lengths, sources, strict=True)):
            if i:
                pos += sentence_gap
            n = int(length)
            if text and pending:
                yield _sentence(pending)
                pending = []
            where = (bucket.chapter, bucket.paragraph)
            pending.append((where, text, pos, pos + n, segment.pcm[offset : offset + n]))
            pos += n
            offset += n
        prev = bucket
    if pending:
        yield _sentence(pending)


def _sentence(parts: list[tuple[tuple[int, int], str, int, int, np.ndarray]]) -> Sentence:
    return Sentence(
        chapter=parts[0][0][0],
        paragraph=parts[0][0][1],
        text=" ".join(parts[0][1].split()),
        spans=tuple((p[2], p[3]) for p in parts),
        audio=tuple(p[4] for p in parts),
    )


def fits(text: str) -> bool:
    return len(textwrap.wrap(text, LINE_CHARS)) <= CUE_LINES


def split_text(text: str) -> list[str]:
    """A sentence as cues that each fit in two lines; cut after punctuation where it can be."""
    if fits(text):
        return [text]
    chunks: list[str] = []
    words = text.split()
    current: list[str] = []
    for word in words:
        if current and not fits(" ".join([*current, word])):
            # prefer to end the cue after a clause mark in its second half
            cut = len(current)
            for k in range(len(current) - 1, len(current) // 2, -1):
                if re.search(r"[,;:.!?…—–)\"”’]$", current[k - 1]):
                    cut = k
                    break
            chunks.append(" ".join(current[:cut]))
            current = current[cut:]
        current.append(word)
    if current:
        chunks.append(" ".join(current))
    return chunks


def sentence_cues(sentence: Sentence, rate: int) -> list[Cue]:
    """The cues of one sentence: one, or several cut at quiet moments inside it."""
    chunks = split_text(sentence.text) if sentence.text else []
    if not chunks or sentence.end <= sentence.start:
        return []
    if len(chunks) == 1:
        return [Cue(sentence.chapter, sentence.start, sentence.end, chunks[0])]
    audio, origin = _unit_audio(sentence)
    total = sum(len(c) for c in chunks)
    cuts = [sentence.start]
    done = 0
    for chunk in chunks[:-1]:
        done += len(chunk)
        guess = sentence.start + round((sentence.end - sentence.start) * done / total)
        cuts.append(_quietest(audio, origin, guess, cuts[-1], sentence.end, rate))
    cuts.append(sentence.end)
    return [
        Cue(sentence.chapter, cuts[i], cuts[i + 1], chunk, first_of_sentence=i == 0)
        for i, chunk in enumerate(chunks)
        if cuts[i + 1] > cuts[i]
    ]


def _unit_audio(sentence: Sentence) -> tuple[np.ndarray, int]:
    """The sentence's audio with its inner pauses as silence, and the sample it starts at."""
    audio = np.zeros(sentence.end - sentence.start, np.float32)
    for (start, end), pcm in zip(sentence.spans, sentence.audio, strict=True):
        audio[start - sentence.start : end - sentence.start] = pcm
    return audio, sentence.start


def _quietest(audio: np.ndarray, origin: int, guess: int, lo: int, hi: int, rate: int) -> int:
    """The middle of the quietest short frame near ``guess``, strictly between lo and hi."""
    frame = max(1, round(_FRAME_SECONDS * rate))
    reach = round(_SEARCH_SECONDS * rate)
    start = max(lo + frame, guess - reach) - origin
    stop = min(hi - frame, guess + reach) - origin
    if stop - start < frame:
        return guess
    window = audio[start:stop].astype(np.float64) ** 2
    energy = np.convolve(window, np.ones(frame), mode="valid")
    # among equally quiet frames (a pause), the one nearest the guess
    quiet = energy <= energy.min() + 1e-9 * frame
    candidates = np.flatnonzero(quiet)
    centre = guess - origin - start - frame // 2
    best = int(candidates[np.argmin(np.abs(candidates - centre))])
    return origin + start + best + frame // 2


def book_cues(folder: Path, manifest: Manifest, plan: Plan) -> list[Cue]:
    rate = manifest.sample_rate
    return [
        cue for sentence in book_sentences(folder, manifest, plan)
        for cue in sentence_cues(sentence, rate)
    ]  # fmt: skip


def _stamp(samples: int, rate: int, sep: str) -> str:
    ms = round(samples * 1000 / rate)
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def _lines(text: str) -> str:
    return "\n".join(textwrap.wrap(text, LINE_CHARS)) or text


def render_srt(cues: list[Cue], rate: int, offset: int = 0) -> str:
    blocks = [
        f"{n}\n{_stamp(c.start - offset, rate, ',')} --> {_stamp(c.end - offset, rate, ',')}\n"
        f"{_lines(c.text)}\n"
        for n, c in enumerate(cues, 1)
    ]
    return "\n".join(blocks)


def _vtt_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(
    cues: list[Cue], rate: int, titles: dict[int, str], title: str = "", offset: int = 0
) -> str:
    """WebVTT; each chapter opens with a NOTE naming it, and its first cue is named after it."""
    head = f"WEBVTT - {' '.join(title.split())}" if title.strip() else "WEBVTT"
    out = [head + "\n"]
    chapter = None
    for n, c in enumerate(cues, 1):
        name = str(n)
        if c.chapter != chapter:
            chapter = c.chapter
            chapter_title = " ".join(titles.get(c.chapter, "").split())
            if chapter_title:
                out.append(f"NOTE chapter: {_vtt_text(chapter_title)}\n")
                name = f"{n} {chapter_title.replace('-->', '->')}"
        out.append(
            f"{name}\n{_stamp(c.start - offset, rate, '.')} --> "
            f"{_stamp(c.end - offset, rate, '.')}\n{_vtt_text(_lines(c.text))}\n"
        )
    return "\n".join(out)


def caption_files(
    output: Path, fmt: str, timeline: Timeline, split: bool, kind: str
) -> list[tuple[Path, int, int]]:
    """(caption file, first sample, end sample) for the book, or each chapter file."""
    if not split:
        return [(output.with_suffix(f".{kind}"), 0, timeline.total)]
    marks = timeline.chapters
    files = chapter_files(output, fmt, timeline)
    spans = []
    for n, (mark, path) in enumerate(zip(marks, files, strict=True)):
        start = 0 if n == 0 else mark.start  # as chapter_files.write_split cuts them
        end = marks[n + 1].start if n + 1 < len(marks) else timeline.total
        spans.append((path.with_suffix(f".{kind}"), start, end))
    return spans


def write_captions(
    folder: Path,
    manifest: Manifest,
    plan: Plan,
    timeline: Timeline,
    output: Path,
    *,
    fmt: str,
    split: bool,
    kinds: tuple[str, ...],
) -> list[Path]:
    """Write each caption kind beside the audiobook (or each chapter file); the files."""
    if not kinds:
        return []
    cues = book_cues(folder, manifest, plan)
    rate = manifest.sample_rate
    titles = {k: manifest.chapter_title(k) for k in manifest.chapters}
    written = []
    for kind in kinds:
        for path, start, end in caption_files(output, fmt, timeline, split, kind):
            part = [c for c in cues if start <= c.start < end]
            if kind == "srt":
                text = render_srt(part, rate, offset=start)
            else:
                book_title = str(manifest.meta.get("title") or "")
                text = render_vtt(part, rate, titles, book_title, offset=start)
            try:
                with replacing(path) as tmp:
                    tmp.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise os_error(exc, OutputError, f"cannot write the captions {path}") from exc
            written.append(path)
    return written


__all__ = ["CAPTION_FORMATS", "Cue", "book_cues", "parse_formats", "write_captions"]
