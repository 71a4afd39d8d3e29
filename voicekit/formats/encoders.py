"""The encoders, one per format: WAV by our own writer, FLAC, MP3, Opus and M4B by ffmpeg.

Each encoder streams the PCM into ffmpeg's stdin (never the whole book in memory),
then tags the finished file with mutagen. ``path`` is already a temp file beside
the final output, so the container is always named with ``-f``.

=======  ==========================  =====================================================
format   audio                       chapters
=======  ==========================  =====================================================
m4b      AAC-LC, 64 kbps mono        QuickTime chapter track + Nero chpl (ffmpeg); moov first
mp3      MP3 (LAME), 64 kbps mono    ID3v2.3 CHAP + CTOC (mutagen), nested past 255
opus     Opus in Ogg, 32 kbps mono   CHAPTERnnn Vorbis comments (mutagen)
flac     FLAC, lossless              CHAPTERnnn Vorbis comments (mutagen)
=======  ==========================  =====================================================
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import InputError
from voicekit.formats import tags as tagging
from voicekit.formats.chapters import write_ffmetadata
from voicekit.formats.ffmpeg import encode_pcm, find_ffmpeg
from voicekit.formats.tags import Cover, load_cover
from voicekit.formats.timeline import ChapterMark, Timeline
from voicekit.formats.wav import WavWriter


@dataclass
class EncodeOptions:
    """What an encoder needs besides the audio."""

    bitrate: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """title, authors, language, publisher, date, description, genre, track..."""
    cover: Path | Cover | None = None
    """A cover image file, or the picture already loaded."""
    protect: tuple[Path, ...] = ()
    """Files the output must never replace: the inputs."""
    sample_rate: int | None = None
    """Resample to this rate when encoding (ACX: 44100); None: the PCM's own."""
    room_tone: RoomTone | None = None
    """Room tone at each file's head and tail, and under the whole file."""

    def cover_image(self) -> Cover | None:
        """The cover, ready to embed; InputError if it is not a usable image.

        A file is read (and converted, for GIF, WebP...) on the first call and the
        result kept, so a book split into many files does that work once.
        """
        if isinstance(self.cover, Path):
            self.cover = load_cover(self.cover)
        return self.cover


@dataclass(frozen=True)
class RoomTone:
    """Room tone for delivery standards (ACX) that want it at the head and tail of each file.

    A synthetic voice's pauses are digital zero. ACX asks for a noise floor at or below
    -60 dB and for real room tone, not digital silence, so a faint, steady noise goes
    under the whole file (pauses included) at ``level_db`` and the head and tail are
    padded with it. The noise is seeded: the same book gives the same bytes.
    """

    head_s: float = 0.0
    tail_s: float = 0.0
    level_db: float | None = None
    """RMS in dBFS of the noise; None: digital silence (padding only)."""

    def apply(self, timeline: Timeline, pcm: Iterable[np.ndarray]) -> tuple[Timeline, Any]:
        """The padded timeline (chapter marks moved by the head) and its PCM."""
        rate = timeline.sample_rate
        head, tail = round(self.head_s * rate), round(self.tail_s * rate)
        marks = [ChapterMark(m.index, m.title, m.start + head if i else 0, m.end + head)
                 for i, m in enumerate(timeline.chapters)]  # fmt: skip
        if marks:
            marks[-1] = ChapterMark(marks[-1].index, marks[-1].title, marks[-1].start,
                                    marks[-1].end + tail)  # fmt: skip
        padded = Timeline(rate, timeline.total + head + tail, marks)
        return padded, self._stream(pcm, head, tail)

    def _stream(self, pcm: Iterable[np.ndarray], head: int, tail: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(20_000_101)
        sigma = 0.0 if self.level_db is None else 32768 * 10 ** (self.level_db / 20)

        def tone(chunk: np.ndarray) -> np.ndarray:
            if not sigma:
                return chunk
            noisy = chunk.astype(np.float32) + rng.normal(0, sigma, len(chunk)).astype(np.float32)
            return np.clip(np.rint(noisy), -32767, 32767).astype(np.int16)

        if head:
            yield tone(np.zeros(head, np.int16))
        for chunk in pcm:
            yield tone(np.asarray(chunk, np.int16))
        if tail:
            yield tone(np.zeros(tail, np.int16))


Encoder = Callable[[Path, Timeline, Iterable[np.ndarray], EncodeOptions], None]
"""Writes ``path`` (a temp file the caller renames) from a timeline and its PCM."""


DEFAULT_BITRATES = {"m4b": "64k", "mp3": "64k", "opus": "32k"}
AAC_CODER = "fast"
"""ffmpeg's AAC coder for speech: on the bundled voice it scored higher than the default
(twoloop) on PESQ wide-band (4.46 against 4.25) in half the CPU time or less (ffmpeg 5.1
and 9.0; docs/BENCHMARKS.md section 10)."""
CODECS = {"m4b": "aac", "mp3": "libmp3lame", "opus": "libopus", "flac": "flac"}
_BITRATE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")
_MP4_TITLE_BYTES = 255  # chpl stores a title's length in one byte


def bitrate_for(fmt: str, requested: str | None) -> str:
    """``--bitrate`` checked (``64k``, ``96000``, ``0.128M``), else the format's default."""
    if not requested:
        return DEFAULT_BITRATES[fmt]
    match = _BITRATE.match(requested.strip())
    if not match:
        raise InputError(f"bitrate '{requested}' is not a number like 64k or 96000")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    if not 6_000 <= value <= 512_000:
        raise InputError(f"bitrate '{requested}' is outside 6k-512k")
    return f"{round(value / 1000)}k" if value >= 1000 else str(round(value))


def _fit_utf8(text: str, limit: int) -> str:
    """At most ``limit`` UTF-8 bytes, cut on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def _encode(
    fmt: str,
    path: Path,
    timeline: Timeline,
    pcm: Iterable[np.ndarray],
    output_args: list[str],
    chapters: list[ChapterMark] | None = None,
    sample_rate: int | None = None,
) -> None:
    binary = find_ffmpeg(CODECS[fmt])
    if sample_rate and sample_rate != timeline.sample_rate and "-ar" not in output_args:
        # soxr-free default resampler; the limiter already left headroom for its overshoot
        output_args = ["-ar", str(sample_rate), *output_args]
    with contextlib.ExitStack() as stack:
        extra: list[str] = []
        if chapters:  # ffmpeg reads them from a second input, an FFMETADATA file
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="voicekit-ffmeta-"))
            meta = Path(folder) / "chapters.txt"
            meta.write_text(write_ffmetadata(chapters, timeline.sample_rate), encoding="utf-8")
            extra = ["-f", "ffmetadata", "-i", str(meta)]
            output_args = ["-map", "0:a", "-map_chapters", "1", *output_args]
        encode_pcm(
            binary,
            pcm,
            timeline.sample_rate,
            output_args,
            what=f"{fmt} to {path.name}",
            extra_inputs=extra,
        )


def m4b_chapters(timeline: Timeline) -> list[ChapterMark]:
    """The timeline's chapters with titles cut to what the MP4 chapter atoms hold."""
    return [
        ChapterMark(m.index, _fit_utf8(m.title, _MP4_TITLE_BYTES), m.start, m.end)
        for m in timeline.chapters
    ]


def encode_m4b(
    path: Path, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
) -> None:
    bitrate = bitrate_for("m4b", options.bitrate)
    # a bad cover fails here, before any audio is encoded
    tags = tagging.Tags.from_meta(options.meta, options.cover_image())
    chapters = m4b_chapters(timeline)
    # ipod muxer: the iTunes flavour of MP4 Apple players expect, branded M4B;
    # +faststart moves the index (moov) before the audio so players can seek while streaming.
    args = [
        "-c:a",
        "aac",
        "-profile:a",
        "aac_low",
        "-aac_coder",
        AAC_CODER,
        "-b:a",
        bitrate,
        "-movflags",
        "+faststart",
        "-brand",
        "M4B ",
        "-f",
        "ipod",
        str(path),
    ]
    _encode("m4b", path, timeline, pcm, args, chapters, options.sample_rate)
    tagging.fix_mp4_chapters(path, len(chapters))
    tagging.tag_mp4(path, tags)  # mutagen resizes moov in place: it stays before mdat


def encode_mp3(
    path: Path, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
) -> None:
    bitrate = bitrate_for("mp3", options.bitrate)
    tags = tagging.Tags.from_meta(options.meta, options.cover_image())
    # no ID3 from ffmpeg (its CTOC breaks past 255 chapters): mutagen writes all of it
    args = [
        "-c:a",
        "libmp3lame",
        "-b:a",
        bitrate,
        "-id3v2_version",
        "0",
        "-write_id3v1",
        "0",
        "-write_xing",
        "1",
        "-f",
        "mp3",
        str(path),
    ]
    _encode("mp3", path, timeline, pcm, args, None, options.sample_rate)
    tagging.tag_mp3(path, tags, timeline.chapters, timeline.sample_rate)


def encode_opus(
    path: Path, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
) -> None:
    bitrate = bitrate_for("opus", options.bitrate)
    tags = tagging.Tags.from_meta(options.meta, options.cover_image())
    # Opus runs at 48 kHz (voices are 16-22.05 kHz); chapter times are in seconds, unaffected
    args = ["-c:a", "libopus", "-b:a", bitrate, "-ar", "48000", "-f", "opus", str(path)]
    _encode("opus", path, timeline, pcm, args)
    tagging.tag_vorbis(path, "opus", tags, timeline.chapters, timeline.sample_rate)


def encode_flac(
    path: Path, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
) -> None:
    tags = tagging.Tags.from_meta(options.meta, options.cover_image())
    args = ["-c:a", "flac", "-compression_level", "5", "-f", "flac", str(path)]
    _encode("flac", path, timeline, pcm, args, None, options.sample_rate)
    tagging.tag_vorbis(path, "flac", tags, timeline.chapters, timeline.sample_rate)


def encode_wav(
    path: Path, timeline: Timeline, pcm: Iterable[np.ndarray], options: EncodeOptions
) -> None:
    with WavWriter(path, timeline.sample_rate) as writer:
        for chunk in pcm:
            writer.write(chunk)


ENCODERS: dict[str, Encoder] = {
    "wav": encode_wav,
    "m4b": encode_m4b,
    "mp3": encode_mp3,
    "opus": encode_opus,
    "flac": encode_flac,
}
