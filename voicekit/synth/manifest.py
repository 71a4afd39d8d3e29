"""The job manifest: what a job folder's segments add up to, typed.

The pipeline builds a :class:`Manifest` from the plan, the job folder keeps it as
``job.json``, and assembly and ``convert`` read it back. This module is the one
place it is turned into JSON and back; a file that does not parse into this shape
is a JobError, never a KeyError half-way through a book.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicekit.errors import JobError
from voicekit.formats.images import IMAGE_EXTENSIONS

if TYPE_CHECKING:
    from voicekit.backends.voices import Voice
    from voicekit.settings import SynthSettings
    from voicekit.synth.plan import Plan

VERSION = 2
"""Bumped when the layout changes; a job of another version is redone (``--restart``)."""


@dataclass(frozen=True)
class ManifestChapter:
    """A chapter the book reads: its number in the book and the title it is given."""

    index: int
    """The chapter's number in the book (what --chapters takes)."""
    title: str


@dataclass(frozen=True)
class ManifestBucket:
    id: str
    hash: str
    """Names the bucket's segment (``segments/<hash>.npz``)."""
    chapter: int
    """Key of its chapter in :attr:`Manifest.chapters`."""
    paragraph: int
    sentences: int


@dataclass(frozen=True)
class Manifest:
    created: str
    output: str
    source: str
    sample_rate: int
    voice: dict[str, str]
    """name, path and sha256 of the voice the segments were made with."""
    fingerprint: str
    settings: dict[str, Any]
    """Every setting of the run, for the record (the fingerprint is what decides)."""
    silences: dict[str, float]
    """Seconds of pause: sentence, paragraph, chapter."""
    volume: float
    meta: dict[str, Any]
    """Tags for the output: title, authors, language, publisher, date, description."""
    cover: str | None
    """File name of the cover in the job folder (``cover.png``), or None."""
    chapters: dict[int, ManifestChapter]
    buckets: list[ManifestBucket] = field(default_factory=list)

    @classmethod
    def for_plan(cls, plan: Plan, output: Path, voice: Voice, settings: SynthSettings) -> Manifest:
        """What a run of ``plan`` will put in its job folder."""
        meta = plan.book.meta
        cover = f"cover{IMAGE_EXTENSIONS.get(meta.cover_mime, '.jpg')}" if meta.cover else None
        return cls(
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            output=str(output),
            source=str(plan.book.source) if plan.book.source else "-",
            sample_rate=voice.sample_rate,
            voice={"name": voice.name, "path": str(voice.model_path), "sha256": voice.sha256},
            fingerprint=plan.fingerprint,
            settings=asdict(settings),
            silences=settings.silences(),
            volume=settings.volume,
            meta={
                "title": meta.title,
                "authors": meta.authors,
                "language": meta.language or voice.language,
                "publisher": meta.publisher,
                "date": meta.date,
                "description": meta.description,
                "narrators": meta.narrators,
                "series": meta.series,
                "series_index": meta.series_index,
            },
            cover=cover,
            chapters={
                i: ManifestChapter(c.index, c.title)
                for i, c in enumerate(plan.book.chapters)
                if c.included
            },
            buckets=[
                ManifestBucket(b.id, b.hash, b.chapter, b.paragraph, len(b.sentences))
                for b in plan.buckets
            ],
        )

    def chapter_title(self, chapter: int) -> str:
        """The title a chapter is announced and tagged with: its own, else a name for it."""
        info = self.chapters[chapter]
        if info.title:
            return info.title
        book_title = self.meta.get("title")
        if info.index == 1 and book_title:
            return str(book_title)
        return f"Chapter {info.index}"

    def to_json(self) -> bytes:
        data = asdict(self)
        data["chapters"] = [{"key": k, **v} for k, v in data["chapters"].items()]
        return json.dumps({"version": VERSION, **data}, indent=1).encode()

    def stable_json(self) -> str:
        """Everything but the date: what decides whether an output is this job's work."""
        data = json.loads(self.to_json())
        data.pop("created")
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Manifest:
        """Read a manifest; ``where`` names the file in errors."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise JobError(f"job manifest {where} cannot be read: {exc}") from exc
        if not isinstance(data, dict) or data.get("version") != VERSION:
            raise JobError(
                f"job manifest {where} was written by another voicekit version",
                hint="rerun with --restart",
            )
        try:
            data.pop("version")
            chapters = {int(c.pop("key")): ManifestChapter(**c) for c in data.pop("chapters")}
            buckets = [ManifestBucket(**b) for b in data.pop("buckets")]
            return cls(**data, chapters=chapters, buckets=buckets)
        except (TypeError, KeyError, ValueError, AttributeError) as exc:
            raise JobError(
                f"job manifest {where} is damaged ({type(exc).__name__}: {exc})",
                hint="rerun with --restart",
            ) from exc
