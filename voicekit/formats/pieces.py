"""A book encoded as separate AAC pieces, joined into one M4B by stream copy.

Pieces are cut at chapter starts, which lie in pauses (digital silence), rounded to
a whole AAC frame, so every piece but the last is a whole number of frames long.
Each piece is an ordinary MP4 encode: one priming packet (ffmpeg's AAC encoder
delay, 1024 samples) and then one packet per frame; a piece of whole frames gets
no padding packet. The join keeps the first piece's priming packet and drops
every later piece's, so the joined stream has exactly the packets of a single
encode of the whole book: same count, same timestamps, the same last packet
trimmed to the book's length. The MDCT overlap at a join crosses two encodes,
which only matters where there is sound: there is none at a chapter start.

The join is ffmpeg's concat demuxer (``ffconcat``): ``inpoint 0`` makes it start a
piece at its first real packet, dropping the priming one, and each piece's exact
``duration`` places the next (left to the container, it is rounded to a
millisecond). The concat output starts at zero, so ``-output_ts_offset`` moves it
back by the priming, and the MP4 muxer then writes the same edit list (skip 1024
samples) as a single encode. Checked with ffmpeg 5.1 and 9.0: the single encode's
packet times and durations, packet for packet.

MP3 and Opus are not joined this way. Measured with ffmpeg 5.1, two pieces of
46,080 samples at 22,050 Hz copied into one file: each MP3 piece decodes gapless
alone (its LAME header trims delay and padding), but the join decodes to 93,312
samples, a frame (1,152) more than went in: mid-stream there is nothing to trim the
second piece's delay and padding with, and frames cannot simply be dropped (the bit
reservoir ties a frame to those before it). The Opus join decodes 226 samples too
many (the second piece's pre-skip, played mid-stream).
"""

from __future__ import annotations

import itertools
import math
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from voicekit.errors import InputError
from voicekit.formats import tags as tagging
from voicekit.formats.chapters import write_ffmetadata
from voicekit.formats.encoders import (
    AAC_CODER,
    EncodeOptions,
    bitrate_for,
    m4b_chapters,
)
from voicekit.formats.ffmpeg import encode_pcm, find_ffmpeg, run
from voicekit.formats.timeline import Timeline
from voicekit.system.fsutil import replacing

FRAME = {"m4b": 1024}
"""Samples per codec frame, at the encoded rate."""
PRIMING = {"m4b": 1024}
"""Encoder delay of ffmpeg's AAC encoder: the first packet, skipped by the edit list."""
PIECE_FORMATS = frozenset(FRAME)
"""Formats whose pieces join by stream copy."""


def cut_step(fmt: str, sample_rate: int, out_rate: int | None = None) -> int:
    """The smallest span, in samples at ``sample_rate``, that is a whole number of frames
    once resampled to ``out_rate``: 1024 without resampling, 512 for 22,050 to 44,100 Hz."""
    if fmt not in FRAME:
        raise InputError(f"{fmt} cannot be joined from pieces; only {', '.join(PIECE_FORMATS)}")
    frame_in = FRAME[fmt] * sample_rate
    out = out_rate or sample_rate
    return frame_in // math.gcd(frame_in, out)


def cut_points(timeline: Timeline, fmt: str, out_rate: int | None = None) -> list[int]:
    """Where pieces end, in samples of the timeline: each chapter start after the first,
    rounded to the nearest whole frame; cuts at 0 or at the end, and repeats, are left out.

    The pieces are ``[0, c1), [c1, c2) ... [cn, total)``.
    """
    step = cut_step(fmt, timeline.sample_rate, out_rate)
    cuts: list[int] = []
    for mark in timeline.chapters[1:]:
        cut = round(mark.start / step) * step
        if 0 < cut < timeline.total and (not cuts or cut > cuts[-1]):
            cuts.append(cut)
    return cuts


def encode_piece(
    path: Path,
    pcm: Iterable[np.ndarray],
    sample_rate: int,
    *,
    length: int | None,
    bitrate: str | None,
    filters: str = "",
    out_rate: int | None = None,
    coder: str = AAC_CODER,
    log: list[str] | None = None,
) -> None:
    """One piece of ``length`` samples (at ``sample_rate``): AAC-LC in MP4 (``.m4a``),
    written to a temp name and renamed to ``path``.

    ``filters`` is an ffmpeg ``-af`` chain (the loudness gain and limiter). The piece is
    padded or trimmed to exactly ``length`` samples (at ``out_rate``) after the filters
    and the resampler, which can add or drop a few samples at the end: a piece a frame
    longer would shift every piece after it by a frame. ``length=None``: nothing is
    padded or trimmed; the caller checks the length (``synth/finish``'s streamed piece).
    ``coder`` is ffmpeg's ``-aac_coder`` (default: ``encoders.AAC_CODER``, as a single encode).
    ``log`` receives what ffmpeg printed (``ffmpeg.encode_pcm``).
    """
    binary = find_ffmpeg("aac")
    out = out_rate or sample_rate
    chain = [filters] if filters else []
    if out != sample_rate:
        chain.append(f"aresample={out}")
    if length is not None:
        samples = length * out // sample_rate
        chain += [f"apad=whole_len={samples}", f"atrim=end_sample={samples}"]
    args = [*(["-af", ",".join(chain)] if chain else []), "-ar", str(out)]
    args += ["-c:a", "aac", "-profile:a", "aac_low", "-b:a", bitrate_for("m4b", bitrate)]
    args += ["-aac_coder", coder]
    with replacing(path, suffix=".partial.m4a") as tmp:
        encode_pcm(
            binary, pcm, sample_rate, [*args, "-f", "mp4", str(tmp)], what=path.name, log=log
        )


def _ffconcat(pieces: list[Path], lengths: list[int], rate: int) -> str:
    """The concat list, each piece with its exact duration.

    Every piece after the first starts at its first real packet (``inpoint 0``); the
    first keeps its priming packet, before its zero. ffmpeg keeps these durations
    in microseconds and derived from the container they are rounded to milliseconds
    (12 samples off at 22,050 Hz); given as differences of rounded running totals,
    each piece's start is within half a microsecond of exact, well under half a sample.
    """
    lines = ["ffconcat version 1.0"]
    ends = np.cumsum(lengths)
    micros = [round(int(e) * 1_000_000 / rate) for e in ends]
    for n, piece in enumerate(pieces):
        quoted = str(piece.resolve()).replace("'", "'\\''")
        lines.append(f"file '{quoted}'")
        if n:
            lines.append("inpoint 0")
        duration = micros[n] - (micros[n - 1] if n else 0)
        lines.append(f"duration {duration / 1_000_000:.6f}")
    return "\n".join(lines) + "\n"


def join_pieces(
    path: Path,
    pieces: list[Path],
    timeline: Timeline,
    options: EncodeOptions,
    *,
    out_rate: int | None = None,
    bounds: list[int] | None = None,
) -> None:
    """The M4B at ``path`` (a temp file the caller renames) from ``pieces``, by stream copy.

    The same container as ``encode_m4b``: chapters from ``timeline``, QuickTime chapter
    track and Nero ``chpl``, moov first, brand M4B, tags and cover by mutagen. The
    pieces are those ``cut_points`` gives, or those that ``bounds`` (timeline samples:
    0, every cut, the end) say, in order, encoded by ``encode_piece`` at ``out_rate``
    (None: the timeline's rate), which the priming offset is counted in. Cuts elsewhere
    than chapter starts must lie in silence too, on the frame grid (``synth/finish``
    cuts in the middle of pauses).
    """
    if not pieces:
        raise InputError("no pieces to join")
    tags = tagging.Tags.from_meta(options.meta, options.cover_image())
    chapters = m4b_chapters(timeline)
    rate = out_rate or timeline.sample_rate
    if bounds is None:
        bounds = [0, *cut_points(timeline, "m4b", out_rate), timeline.total]
    if bounds[0] != 0 or bounds[-1] != timeline.total:
        raise InputError(f"pieces must cover the timeline: {bounds[0]}..{bounds[-1]}")
    if len(bounds) - 1 != len(pieces):
        raise InputError(f"{len(pieces)} pieces for a timeline cut in {len(bounds) - 1}")
    lengths = [(b - a) * rate // timeline.sample_rate for a, b in itertools.pairwise(bounds)]
    # microseconds (ffmpeg's unit), rounded: within half a sample of the priming at any rate
    offset = f"-{PRIMING['m4b'] / rate:.6f}"
    binary = find_ffmpeg()
    with tempfile.TemporaryDirectory(prefix="voicekit-join-") as name:
        folder = Path(name)
        listing = folder / "pieces.ffconcat"
        listing.write_text(_ffconcat(pieces, lengths, rate), encoding="utf-8")
        meta = folder / "chapters.txt"
        meta.write_text(write_ffmetadata(chapters, timeline.sample_rate), encoding="utf-8")
        args = [
            "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
            "-f", "ffmetadata", "-i", str(meta),
            "-map", "0:a", "-map_metadata", "1", "-map_chapters", "1" if chapters else "-1",
            "-c", "copy", "-output_ts_offset", offset,
            "-movflags", "+faststart", "-brand", "M4B ", "-f", "ipod", str(path),
        ]  # fmt: skip
        run(binary, args, what=f"join {len(pieces)} pieces into {path.name}", writing=True)
    tagging.fix_mp4_chapters(path, len(chapters))
    tagging.tag_mp4(path, tags)
