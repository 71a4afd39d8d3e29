"""Tags, cover art and (for MP3, FLAC and Opus) chapters, written with mutagen after encoding.

* M4B: iTunes atoms (title, author, album, genre "Audiobook", year, description,
  media kind Audiobook, cover). Chapters are ffmpeg's (QuickTime chapter track
  plus Nero ``chpl``); see ``fix_mp4_chapters`` for books past 255 chapters.
* MP3: ID3v2.3 text frames, APIC cover, and chapters as CHAP frames under a CTOC
  table of contents. A CTOC lists at most 255 children (its count is one byte),
  so longer books get a top-level CTOC of sub-CTOCs of up to 255 chapters each.
* FLAC/Opus: Vorbis comments, the picture block (FLAC) or METADATA_BLOCK_PICTURE
  (Opus), and chapters as CHAPTERnnn/CHAPTERnnnNAME comments (ffmpeg and many
  players read them).
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mutagen.id3 import ID3
from mutagen.id3._tags import save_frame  # no public hook for frame order: see below

from voicekit.errors import InputError, SynthesisError
from voicekit.formats import ffmpeg
from voicekit.formats.chapters import format_time
from voicekit.formats.images import image_problem, sniff_image
from voicekit.formats.timeline import ChapterMark

GENRE = "Audiobook"
CTOC_MAX = 255
"""Children one ID3 CTOC frame can list (the count is one byte)."""
CHPL_MAX = 255
"""Chapters a Nero ``chpl`` atom can list (also a one-byte count)."""


@dataclass(frozen=True)
class Cover:
    """A cover picture ready to embed: JPEG or PNG bytes and their MIME type."""

    data: bytes
    mime: str


@dataclass
class Tags:
    title: str = ""
    album: str = ""
    authors: tuple[str, ...] = ()
    genre: str = GENRE
    year: str = ""
    date: str = ""
    description: str = ""
    publisher: str = ""
    language: str = ""
    track: tuple[int, int] | None = None
    cover: bytes | None = None
    cover_mime: str = ""
    narrators: tuple[str, ...] = ()
    """Written as the composer, where audiobook players (Audiobookshelf, Plex...) look."""
    series: str = ""
    series_index: str = ""

    @classmethod
    def from_meta(cls, meta: dict[str, Any], cover: Cover | None) -> Tags:
        """From EncodeOptions.meta (the job manifest's meta, or convert's) and a loaded cover."""
        date = str(meta.get("date") or "")
        year = re.match(r"\d{4}", date)
        authors = meta.get("authors") or []
        if isinstance(authors, str):
            authors = [authors]
        track = meta.get("track")
        title = str(meta.get("title") or "")
        narrators = meta.get("narrators") or []
        if isinstance(narrators, str):
            narrators = [narrators]
        return cls(
            title=title,
            album=str(meta.get("album") or title),
            authors=tuple(str(a) for a in authors if a),
            genre=str(meta.get("genre") or GENRE),
            year=year.group(0) if year else "",
            date=date,
            description=str(meta.get("description") or ""),
            publisher=str(meta.get("publisher") or ""),
            language=str(meta.get("language") or ""),
            track=(int(track[0]), int(track[1])) if track else None,
            cover=cover.data if cover else None,
            cover_mime=cover.mime if cover else "",
            narrators=tuple(str(n) for n in narrators if n),
            series=str(meta.get("series") or ""),
            series_index=str(meta.get("series_index") or ""),
        )

    @property
    def artist(self) -> str:
        return ", ".join(self.authors)

    @property
    def narrator(self) -> str:
        return ", ".join(self.narrators)


# What every player shows; GIF, WebP and the rest are converted to PNG.
EMBEDDABLE = ("image/jpeg", "image/png")


def load_cover(path: Path) -> Cover:
    """A cover as JPEG or PNG bytes; other images ffmpeg reads are converted to PNG.

    A JPEG, PNG, GIF or WebP is checked by its header first (size within limits, not
    cut short), so a bad one fails here, before ffmpeg decodes it or any audio is made.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"cover image not found: {path}") from exc
    except OSError as exc:
        raise InputError(f"cannot read cover image {path}: {exc.strerror or exc}") from exc
    if not data:
        raise InputError(f"cover image {path} is empty")
    mime = sniff_image(data)
    if mime and (problem := image_problem(data)):
        raise InputError(f"cover {path} {problem}", hint="use another image, or a smaller copy")
    if mime in EMBEDDABLE:
        return Cover(data, mime)
    try:
        png = ffmpeg.to_png(data)
    except InputError as exc:
        raise InputError(f"cover {path} is not an image voicekit can use ({exc})") from exc
    if sniff_image(png) != "image/png":
        raise InputError(f"cover {path} is not an image voicekit can use")
    return Cover(png, "image/png")


def _open(kind: Any, path: Path) -> Any:
    try:
        return kind(path)
    except Exception as exc:  # mutagen raises its own family and struct/OS errors
        raise SynthesisError(f"cannot tag {path.name}: {exc}") from exc


# --------------------------------------------------------------------------- MP4 / M4B
def tag_mp4(path: Path, tags: Tags) -> None:
    from mutagen.mp4 import MP4, MP4Cover

    audio = _open(MP4, path)
    if audio.tags is None:
        audio.add_tags()
    t = audio.tags
    values: dict[str, Any] = {
        "\xa9nam": tags.title,
        "\xa9alb": tags.album,
        "\xa9ART": tags.artist,
        "aART": tags.artist,
        "\xa9gen": tags.genre,
        "\xa9day": tags.year,
        "\xa9wrt": tags.narrator,
        "\xa9mvn": tags.series,  # movement: where Apple and Audiobookshelf read a series
        "desc": tags.description[:255],
        "ldes": tags.description,
    }
    for key, value in values.items():
        if value:
            t[key] = [value]
    t["stik"] = [2]  # media kind: Audiobook (Apple Books files it under Audiobooks)
    if tags.publisher:
        t["----:com.apple.iTunes:PUBLISHER"] = [tags.publisher.encode("utf-8")]
    if tags.track:
        t["trkn"] = [tags.track]
    if tags.series_index.isdigit():  # the movement number is an integer atom
        t["\xa9mvi"] = [int(tags.series_index)]
    # freeform too: what ffmpeg (and so `convert`) reads back; it skips the movement atoms
    if tags.series:
        t["----:com.apple.iTunes:SERIES"] = [tags.series.encode("utf-8")]
    if tags.series_index:
        t["----:com.apple.iTunes:SERIES-PART"] = [tags.series_index.encode("utf-8")]
    if tags.cover:
        kind = MP4Cover.FORMAT_PNG if tags.cover_mime == "image/png" else MP4Cover.FORMAT_JPEG
        t["covr"] = [MP4Cover(tags.cover, imageformat=kind)]
    try:
        audio.save()
    except Exception as exc:
        raise SynthesisError(f"cannot tag {path.name}: {exc}") from exc


def fix_mp4_chapters(path: Path, count: int) -> None:
    """Past 255 chapters ffmpeg's Nero ``chpl`` holds only the first 255; blank it out.

    The QuickTime chapter track ffmpeg also writes holds them all, and readers that
    know both (ffmpeg, VLC, Apple) read it. A truncated ``chpl`` would make
    chpl-only readers show a wrong list (chapter 255 running to the end), so the
    atom is renamed ``free`` in place: same size, no offsets move.
    """
    if count <= CHPL_MAX:
        return
    from mutagen.mp4 import Atoms

    with path.open("r+b") as fh:
        atoms = Atoms(fh)
        try:
            chpl = atoms.path(b"moov", b"udta", b"chpl")[-1]
        except KeyError:
            return
        fh.seek(chpl.offset + 4)
        fh.write(b"free")


# --------------------------------------------------------------------------- MP3 / ID3
class _ChaptersInOrderID3(ID3):
    """ID3 that writes its chapter frames last, CTOCs first and CHAPs by start time.

    mutagen orders frames by size when it saves, so CHAP frames came out in an
    order of their titles' lengths, and ffprobe 5.x and the players built on it
    list chapters in file order. mutagen has no public hook for frame order: the
    other frames go through its own ``_write``, and the chapter frames are
    appended after them with its frame writer.
    """

    def _write(self, config: Any) -> bytearray:
        chapters = [f for f in self.values() if f.FrameID in ("CHAP", "CTOC")]
        for frame in chapters:
            del self[frame.HashKey]
        try:
            data: bytearray = super()._write(config)
        finally:
            for frame in chapters:
                self.add(frame)
        chapters.sort(key=lambda f: (f.FrameID != "CTOC", getattr(f, "start_time", 0)))
        for frame in chapters:
            data += save_frame(frame, config=config)
        return data


def tag_mp3(path: Path, tags: Tags, chapters: list[ChapterMark], sample_rate: int) -> None:
    from mutagen.id3 import (
        APIC,
        CHAP,
        COMM,
        CTOC,
        TALB,
        TCOM,
        TCON,
        TDRC,
        TIT2,
        TPE1,
        TPE2,
        TPUB,
        TRCK,
        TXXX,
        CTOCFlags,
        ID3NoHeaderError,
    )

    try:
        id3 = _ChaptersInOrderID3(path)
    except ID3NoHeaderError:
        id3 = _ChaptersInOrderID3()
    except Exception as exc:
        raise SynthesisError(f"cannot tag {path.name}: {exc}") from exc
    text_frames = [
        (TIT2, tags.title),
        (TALB, tags.album),
        (TPE2, tags.artist),
        (TCON, tags.genre),
        (TDRC, tags.year),
        (TPUB, tags.publisher),
        (TCOM, tags.narrator),
    ]
    for frame, value in text_frames:
        if value:
            id3.add(frame(encoding=3, text=[value]))
    if tags.authors:  # one string: ID3v2.3 would join a list with "/" (think "AC/DC")
        id3.add(TPE1(encoding=3, text=[tags.artist]))
    if tags.description:
        id3.add(COMM(encoding=3, lang="eng", desc="", text=[tags.description]))
    for desc, value in (("SERIES", tags.series), ("SERIES-PART", tags.series_index)):
        if value:
            id3.add(TXXX(encoding=3, desc=desc, text=[value]))
    if tags.track:
        id3.add(TRCK(encoding=3, text=[f"{tags.track[0]}/{tags.track[1]}"]))
    if tags.cover:
        id3.add(APIC(encoding=3, mime=tags.cover_mime, type=3, desc="Cover", data=tags.cover))
    ids = [f"chp{n}" for n in range(len(chapters))]
    for element_id, mark in zip(ids, chapters, strict=True):
        id3.add(CHAP(
            element_id=element_id,
            start_time=round(mark.start * 1000 / sample_rate),
            end_time=round(mark.end * 1000 / sample_rate),
            sub_frames=[TIT2(encoding=3, text=[mark.title])],
        ))  # fmt: skip
    if chapters:
        top = CTOCFlags.TOP_LEVEL | CTOCFlags.ORDERED
        if len(ids) <= CTOC_MAX:
            children = ids
        else:  # one byte of child count: a table of tables, each of <= 255 chapters
            groups = [ids[i : i + CTOC_MAX] for i in range(0, len(ids), CTOC_MAX)]
            children = [f"toc{n}" for n in range(1, len(groups) + 1)]
            for sub_id, group in zip(children, groups, strict=True):
                id3.add(
                    CTOC(
                        element_id=sub_id,
                        flags=CTOCFlags.ORDERED,
                        child_element_ids=group,
                        sub_frames=[],
                    )
                )
        id3.add(
            CTOC(
                element_id="toc",
                flags=top,
                child_element_ids=children,
                sub_frames=[TIT2(encoding=3, text=[tags.title or "Chapters"])],
            )
        )
    try:
        # v2.3: what the most players (and Windows) read; mutagen converts the frames
        id3.save(path, v2_version=3)
    except Exception as exc:
        raise SynthesisError(f"cannot tag {path.name}: {exc}") from exc


# --------------------------------------------------------------------------- FLAC / Opus
def vorbis_comments(
    tags: Tags, chapters: list[ChapterMark], sample_rate: int
) -> dict[str, list[str]]:
    comments: dict[str, list[str]] = {}
    singles = {
        "TITLE": tags.title,
        "ALBUM": tags.album,
        "ALBUMARTIST": tags.artist,
        "GENRE": tags.genre,
        "DATE": tags.date or tags.year,
        "DESCRIPTION": tags.description,
        "ORGANIZATION": tags.publisher,
        "LANGUAGE": tags.language,
        "SERIES": tags.series,
        "SERIES-PART": tags.series_index,
    }
    for key, value in singles.items():
        if value:
            comments[key] = [value]
    if tags.authors:
        comments["ARTIST"] = list(tags.authors)
    if tags.narrators:
        comments["COMPOSER"] = list(tags.narrators)
    if tags.track:
        comments["TRACKNUMBER"] = [str(tags.track[0])]
        comments["TRACKTOTAL"] = [str(tags.track[1])]
    for n, mark in enumerate(chapters, 1):
        # three digits, as readers parse them (ffmpeg reads exactly three); past 999 the
        # number simply grows, which ffmpeg skips but the first 999 stay readable
        key = f"CHAPTER{n:03d}"
        comments[key] = [format_time(mark.start / sample_rate)]
        comments[key + "NAME"] = [mark.title]
    return comments


def _picture(tags: Tags) -> Any:
    from mutagen.flac import Picture

    pic = Picture()
    pic.type = 3
    pic.mime = tags.cover_mime
    pic.desc = "Cover"
    pic.data = tags.cover
    return pic


def tag_vorbis(
    path: Path, fmt: str, tags: Tags, chapters: list[ChapterMark], sample_rate: int
) -> None:
    from mutagen.flac import FLAC
    from mutagen.oggopus import OggOpus

    audio = _open(FLAC if fmt == "flac" else OggOpus, path)
    if audio.tags is None:
        audio.add_tags()
    for key, values in vorbis_comments(tags, chapters, sample_rate).items():
        audio.tags[key] = values
    if tags.cover:
        if fmt == "flac":
            audio.clear_pictures()
            audio.add_picture(_picture(tags))
        else:
            encoded = base64.b64encode(_picture(tags).write()).decode("ascii")
            audio.tags["METADATA_BLOCK_PICTURE"] = [encoded]
    try:
        audio.save()
    except Exception as exc:
        raise SynthesisError(f"cannot tag {path.name}: {exc}") from exc
