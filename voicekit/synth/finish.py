"""Encode the book while it is synthesised: pieces in parallel, then a stream-copy join.

A book used to be synthesised, then measured, then encoded by one ffmpeg: on a fast
device the encode was most of the run. Here the audio is cut into pieces (chapters,
and long chapters at their pauses) as soon as the buckets before a cut are
finished; each piece goes through the loudness chain and the encoder in its own
ffmpeg processes while synthesis goes on, and lands in the job folder as a
checkpoint. The final file is the pieces joined by stream copy
(``formats.pieces.join_pieces``): no second encode.

Cuts lie in the middle of a pause at least ``MIN_GAP_FRAMES`` codec frames long, on
the codec's frame grid, so every piece but the last is a whole number of frames and
the join is exact and silent (``formats/pieces`` says how the encoder delay is
handled). Chapter marks come from the timeline, not from the cuts.

The piece after the last cut is not left for its cut either: it is streamed through
its chain as its buckets are placed (``Open``), up to where no later cut can fall, and
ends at its cut or the book's end. A book with no pause to cut in (every pause at zero)
is then not one piece encoded after the synthesis, and a book's last piece is mostly
made by the time its last bucket is. An M4B piece must be its exact length, which a
chain could miss by a few samples at its end (``encode_piece`` pads or trims a cut
piece there). The length of the piece being streamed is known only at its end, so
its ffmpeg counts what its chain gives (``COUNTING``), and in the rare case that is
not the piece's length the piece is made again, cut.

Loudness keeps one gain for the whole book. It is found on the book's first
``PREFIX_SECONDS`` (a fixed span of the book, so it is the same on a resumed run),
each piece is measured by the ffmpeg that encodes it (``formats.loudness.measuring``) and
the pieces' blocks are combined at the end. If the book as a whole then misses the
target by more than ``ACCEPT_LU``, the gain is corrected and the pieces are encoded
again, and the run warns that it did.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from voicekit.errors import JobError, SynthesisError, os_error
from voicekit.formats import ffmpeg, loudness
from voicekit.formats.encoders import EncodeOptions, bitrate_for
from voicekit.formats.loudness import Blocks, LoudnessPlan
from voicekit.formats.pieces import FRAME, PIECE_FORMATS, encode_piece
from voicekit.formats.timeline import Timeline
from voicekit.synth.assemble import Layout, Placed
from voicekit.synth.background import GRACE, PATIENCE, Stopped, children, kill_children
from voicekit.synth.job import PIECES, Job
from voicekit.synth.manifest import Manifest, ManifestBucket
from voicekit.system.fsutil import replacing

PREFIX_SECONDS = 120.0
"""Audio at the start of the book the gain is measured on before pieces are encoded."""
ACCEPT_LU = 0.5
"""How far the whole book may land from the target before its pieces are encoded again.

Half the 1 LU the loudness option promises; speech of one voice varies little
over a book (the harbour story's first two minutes put it 0.36 LU off, docs/BENCHMARKS.md
section 14).
"""
MAX_PIECE_SECONDS = 120.0
"""A chapter longer than this is cut at its next pause too (any pause of ``MIN_GAP_FRAMES``:
a paragraph's or a sentence's), so it is encoded in parts. Cutting only at paragraphs
left a text without blank lines (one paragraph) as one piece, all of it encoded after the
synthesis on one core: 5.5-7.1 s of encoding after the synthesis on harbour's text as one
paragraph, to M4B (docs/BENCHMARKS.md, section 14.5).

Whatever the last piece holds is encoded after the synthesis ends, with a core idle:
at 600 s that tail was 4-5 s on Alice I-II (two ten-minute chapters), at 120 s 0.7 s,
while the WAV join, reading 10 pieces instead of 4, went from 1.5 to 2.1 s
(docs/BENCHMARKS.md, section 14.2)."""
MIN_GAP_FRAMES = 4
"""A pause must be this many codec frames long to cut in: the cut's frame, its
neighbours' overlap and the encoder delay all lie in digital silence."""
VERSION = 2
"""Part of every piece's key: a change in how pieces are made retires the old ones.
(2: a WAV's pieces are raw PCM, not FLAC.)"""


ENCODED = "encoded"
"""Pieces are encoded audio, joined by stream copy into the output (M4B)."""
NORMALISED = "normalised"
"""Pieces are PCM through the loudness chain; one encoder then writes the output from them.

They are kept as FLAC, about half the size of their PCM, except for a WAV: its writer
then only copies raw pieces, where decoding FLAC pieces was a serial tail of about
2 s on Alice I-II, and the book's PCM on disk is what the WAV needs anyway
(docs/BENCHMARKS.md, section 14.3)."""


def piece_mode(
    fmt: str, split: bool, options: EncodeOptions, sample_rate: int, loudness: bool
) -> str | None:
    """How this output is made from pieces beside the synthesis; None: not at all.

    M4B is joined from encoded pieces. Room tone is one noise stream across the
    file, and a resampled piece would not end on the codec's frame grid, so those
    (and split chapters, and the other formats, whose copy-join is not exact:
    ``formats/pieces``) take the normalised pieces: the loudness chain, the costly
    part, still runs beside the synthesis, and one encoder reads its output. With
    the loudness off there is nothing to do beside the synthesis for them.
    """
    rate_kept = options.sample_rate in (None, sample_rate)
    if fmt in PIECE_FORMATS and not split and options.room_tone is None and rate_kept:
        return ENCODED
    return NORMALISED if loudness else None


@dataclass(frozen=True)
class Piece:
    number: int
    first: int
    last: int
    """Timeline samples ``[first, last)``."""
    key: str


@dataclass
class Open:
    """A normalised piece streamed through its chain while its buckets are synthesised."""

    number: int
    first: int
    last: int | None = None
    """Set when its cut (or the book's end) is known; the stream ends there."""
    waited: float = 0.0
    """Seconds its stream spent waiting for buckets (not encoding)."""


@dataclass
class Encoded:
    """A finished piece: its file and, when loudness is on, its blocks."""

    path: Path
    blocks: Blocks | None


@dataclass(frozen=True)
class Joined:
    """What the join needs: the book's timeline, loudness (None: off) and pieces in order."""

    timeline: Timeline
    loudness: LoudnessPlan | None
    pieces: list[Path]
    bounds: list[int]
    """Timeline samples where the pieces start, and the end."""


class Finisher:
    """Cuts, normalises and encodes pieces of the book in threads, while it is synthesised.

    ``poll`` is called after every finished bucket (and once before synthesis, for
    what a resumed job holds); ``finish`` waits for the rest and returns what the
    join needs. ``close`` stops everything (Ctrl-C): running encoders see the stop
    within one slice of PCM.
    """

    def __init__(
        self,
        job: Job,
        manifest: Manifest,
        fmt: str,
        options: EncodeOptions,
        *,
        target_lufs: float | None,
        true_peak_dbtp: float,
        mode: str = ENCODED,
        threads: int | None = None,
    ) -> None:
        self.job = job
        self.fmt = fmt
        self.mode = mode
        self.rate = manifest.sample_rate
        self.layout = Layout(job.folder, manifest)
        # PCM pieces keep the AAC grid too: any multiple of a sample would do, and
        # this one keeps the cuts in the same places whatever the format
        self.frame = FRAME.get(fmt, FRAME["m4b"])
        self.bitrate = bitrate_for(fmt, options.bitrate) if mode == ENCODED else "pcm"
        self.target = target_lufs
        self.true_peak = true_peak_dbtp
        self._volume_key = f"{manifest.volume!r}"
        self._cores = threads or os.cpu_count() or 2
        self._busy_limit = max(1, self._cores // 2)  # while synthesis runs beside them
        # one more thread than encoders: the gain's measurement runs beside them
        self._pool = ThreadPoolExecutor(self._cores + 1, thread_name_prefix="voicekit-piece")
        self._cuts = [0]
        self._scanned = 0  # placed buckets looked at for cuts
        self._tail_queued = False
        self._open: Open | None = None
        self._fed = threading.Condition()
        self._safe_end = 0
        """Timeline samples an open piece may be fed: no cut can come before them."""
        self._ready: list[Piece] = []
        self._running: dict[int, Future[Encoded]] = {}
        self._done: dict[int, Encoded] = {}
        self._gain: Future[LoudnessPlan] | None = None
        self._gain_end = 0
        """Where the audio the gain is measured on ends (set as it is submitted)."""
        self._stop = threading.Event()
        self._before = children()  # processes that are not this finisher's encoders
        self._lock = threading.Lock()
        self.encoded_samples = 0
        """Samples encoded so far by this run (resumed pieces are not counted)."""
        self.resumed = 0
        """Pieces found finished in the job folder."""
        self.resumed_samples = 0
        self.began: float | None = None
        """When this run began encoding its first piece (``time.monotonic``)."""
        self.busy_seconds = 0.0
        """Seconds the piece threads spent encoding, summed."""
        self.redone = False
        """The whole book missed the loudness target and was encoded again."""

    # --- while synthesis runs -----------------------------------------------------
    def poll(self, done: Callable[[str], bool]) -> None:
        """Take in newly finished buckets; start the pieces (and the gain) they make ready."""
        self._raise_failure()
        if self.layout.extend(done):
            self._cut()
        self._start_gain()
        self._submit(self._busy_limit)

    @property
    def pieces_done(self) -> int:
        return len(self._done) + sum(f.done() for f in self._running.values())

    def encoded_seconds(self) -> tuple[float, float]:
        """Audio encoded so far (resumed pieces included), and how fast this run encodes
        it (seconds of audio per second of wall time since its first piece; 0: none yet)."""
        with self._lock:
            made, kept = self.encoded_samples, self.resumed_samples
        wall = time.monotonic() - self.began if self.began is not None else 0.0
        return (made + kept) / self.rate, made / self.rate / wall if wall > 0 else 0.0

    def gain_wait(self) -> tuple[float, float] | None:
        """While no piece can be encoded for want of the loudness gain: (seconds of the
        book's start made, seconds the gain is measured on); the two are equal once it
        is being measured. None once the gain is known, or with no loudness target."""
        if self.target is None or (self._gain is not None and self._gain.done()):
            return None
        span = PREFIX_SECONDS * self.rate
        if self._gain is not None:  # measuring: on the book's start, or all of a short one
            made = min(self._gain_end, span) / self.rate
            return made, made
        return min(self.layout.end, span) / self.rate, PREFIX_SECONDS

    @property
    def pieces_known(self) -> int:
        """Pieces cut so far, and the one being streamed (all of them once the book is
        synthesised)."""
        tail = self._tail_queued and self.layout.end > self._cuts[-1]
        return len(self._cuts) - 1 + (tail or self._open is not None)

    def _cut(self) -> None:
        """New cuts from the buckets placed since the last call; queue the pieces they end."""
        buckets = self.layout.manifest.buckets
        placed = self.layout.placed
        min_gap = MIN_GAP_FRAMES * self.frame
        while self._scanned < len(placed):
            here = placed[self._scanned]
            self._scanned += 1
            self._scan(here, buckets, min_gap)
            with self._fed:  # a later cut lies in a pause after this bucket
                self._safe_end = here.end
                self._fed.notify_all()
        if self.layout.complete and not self._tail_queued:
            self._tail_queued = True
            if self.layout.end > self._cuts[-1]:
                self._queue(self._cuts[-1], self.layout.end)

    def _scan(self, here: Placed, buckets: list[ManifestBucket], min_gap: int) -> None:
        """Cut in the pause before ``here`` if it ends a chapter or a long piece."""
        if not here.index or here.gap < min_gap:
            return
        new_chapter = buckets[here.index].chapter != buckets[here.index - 1].chapter
        long_piece = here.start - self._cuts[-1] >= MAX_PIECE_SECONDS * self.rate
        if not (new_chapter or long_piece):
            return
        middle = here.start - here.gap // 2  # the middle of the pause, on the frame grid
        cut = round(middle / self.frame) * self.frame
        if cut > self._cuts[-1]:
            self._queue(self._cuts[-1], cut)
            self._cuts.append(cut)

    def _piece_last(self, number: int) -> int:
        return self._cuts[number + 1] if number + 1 < len(self._cuts) else self.layout.end

    def _queue(self, first: int, last: int) -> None:
        number = len(self._cuts) - 1
        if self._open is not None:  # already streaming: it ends here
            assert self._open.number == number and self._open.first == first
            with self._fed:
                self._open.last = last
                self._fed.notify_all()
            self._open = None
            return
        self._ready.append(Piece(number, first, last, ""))

    # --- loudness -----------------------------------------------------------------
    def _prefix_end(self) -> int | None:
        """Where the gain's span ends: the first bucket ending past PREFIX_SECONDS."""
        limit = PREFIX_SECONDS * self.rate
        for placed in self.layout.placed:
            if placed.end >= limit:
                return placed.end
        return self.layout.end if self.layout.complete else None

    def _start_gain(self) -> None:
        if self.target is None or self._gain is not None:
            return
        end = self._prefix_end()
        if end is None:
            return
        self._gain_end = end
        target, true_peak = self.target, self.true_peak
        self._gain = self._pool.submit(
            lambda: loudness.plan(
                lambda: self._stream(0, end, count=False),
                self.rate,
                target_lufs=target,
                true_peak_dbtp=true_peak,
                lossy=self.fmt not in ("wav", "flac"),
                peaks=False,  # every piece's are measured as it is encoded
            )
        )

    def _filters(self) -> str | None:
        """The loudness chain every piece goes through; None until the gain is known."""
        if self.target is None:
            return ""
        if self._gain is None or not self._gain.done():
            return None
        found = self._gain.result()
        return found.filters(self.rate)

    # --- pieces ---------------------------------------------------------------------
    def _submit(self, limit: int) -> None:
        filters = self._filters()
        if filters is None:
            return
        with self._lock:
            for number in [n for n, f in self._running.items() if f.done()]:
                self._done[number] = self._running.pop(number).result()
            while self._ready and len(self._running) < limit:
                piece = self._ready.pop(0)
                piece = Piece(piece.number, piece.first, piece.last, self._key(piece, filters))
                self._running[piece.number] = self._pool.submit(
                    self._encode, self._make, piece, filters
                )
            self._start_open(limit, filters)

    def _start_open(self, limit: int, filters: str) -> None:
        """Stream the piece after the last cut through its chain as its buckets come.

        A book with no pause long enough to cut in (every pause set to zero) was one
        piece, all of its loudness chain run after the synthesis on one core, and a
        book's last piece was all encoded after it. The piece being synthesised is fed
        to its ffmpeg as its buckets are placed, and its output is the same as fed all
        at once.
        """
        number = len(self._cuts) - 1
        if (
            self._open is not None
            or self._ready
            or len(self._running) >= limit
            or self._tail_queued
            or self._safe_end <= self._cuts[-1]
        ):
            return
        self._open = Open(number, self._cuts[-1])
        self._running[number] = self._pool.submit(
            self._encode, self._make_open, self._open, filters
        )

    def _key(self, piece: Piece, filters: str) -> str:
        """What the piece's bytes are made of: its audio, the chain, the codec."""
        manifest = self.layout.manifest
        what = f"v{VERSION} {self.mode} {self.fmt} {self.bitrate} {filters}"
        digest = hashlib.sha256(what.encode())
        digest.update(f"{piece.first} {piece.last} {self._volume_key}".encode())
        for placed in self.layout.placed:
            if placed.end > piece.first and placed.start - placed.gap < piece.last:
                digest.update(f"{manifest.buckets[placed.index].hash}@{placed.start}".encode())
        return digest.hexdigest()[:32]

    def _paths(self, key: str) -> tuple[Path, Path]:
        folder = self.job.folder / PIECES
        suffix = ".m4a" if self.mode == ENCODED else RAW if self.fmt == "wav" else ".flac"
        return folder / f"{key}{suffix}", folder / f"{key}.json"

    def _encode(
        self, make: Callable[[Any, str], Encoded], piece: Piece | Open, filters: str
    ) -> Encoded:
        try:
            return make(piece, filters)
        except OSError as exc:  # disk full, read-only: what to free, and the work is kept
            where = f"cannot write the job folder {self.job.folder}"
            raise os_error(exc, JobError, where, kept=True) from exc

    def _make(self, piece: Piece, filters: str) -> Encoded:
        audio, record = self._paths(piece.key)
        found = self._finished(audio, record)
        if found is not None:
            with self._lock:
                self.resumed += 1
                self.resumed_samples += piece.last - piece.first
            return found
        began = self._begin()
        pcm = self._stream(piece.first, piece.last)
        logged = self._write(audio, pcm, filters, length=piece.last - piece.first)
        return self._keep(audio, record, piece.last - piece.first, logged, began)

    def _make_open(self, piece: Open, filters: str) -> Encoded:
        began = self._begin()
        streamed, _ = self._paths(f"open-{piece.number}")  # its key needs its last sample
        logged = self._write(streamed, self._feed(piece), filters)
        assert piece.last is not None
        samples = piece.last - piece.first
        done = Piece(piece.number, piece.first, piece.last, "")
        key = self._key(done, filters)
        if self.mode == ENCODED and logged and count_samples(logged) != samples:
            streamed.unlink()  # the chain missed the piece's length: made again, cut
            with self._lock:
                self.encoded_samples -= samples  # counted again as the cut piece is made
            return self._make(replace(done, key=key), filters)
        audio, record = self._paths(key)
        os.replace(streamed, audio)
        return self._keep(audio, record, samples, logged, began + piece.waited)

    def _begin(self) -> float:
        now = time.monotonic()
        if self.began is None:
            self.began = now
        return now

    def _write(
        self,
        path: Path,
        pcm: Iterator[np.ndarray],
        filters: str,
        *,
        length: int | None = None,
    ) -> str | None:
        """One ffmpeg a piece: the loudness chain, its measurement and the encoder (an
        M4B piece is padded to ``length``); what ffmpeg logged, if loudness is on.

        An M4B piece of no ``length`` yet (the one being streamed) is not padded; its
        chain's samples are counted in the log instead (``count_samples``)."""
        log: list[str] | None = None if self.target is None else []
        chain = filters if log is None else loudness.measuring(filters)
        self.job.ensure_pieces()
        if self.mode == ENCODED:
            if length is None and log is not None:
                chain = f"{chain},{COUNTING}"
            encode_piece(
                path, pcm, self.rate, length=length, bitrate=self.bitrate, filters=chain, log=log
            )
        else:
            write_normalised(path, pcm, self.rate, chain, log)
        return log[0] if log else None

    def _keep(
        self, audio: Path, record: Path, samples: int, logged: str | None, began: float
    ) -> Encoded:
        """Record a piece made since ``began`` (its record is written after its audio), with
        the loudness ``_write``'s ffmpeg measured, if on."""
        measured = loudness.parse_blocks(logged) if logged else None
        data = {"samples": samples, "blocks": measured and measured.to_dict()}
        self.job.write_piece_record(record, json.dumps(data))
        with self._lock:
            self.busy_seconds += time.monotonic() - began
        return Encoded(audio, measured)

    def _feed(self, piece: Open) -> Iterator[np.ndarray]:
        """The open piece's PCM as far as it is safe to read, waiting for more until its
        last sample is known and read (the waits add up in ``piece.waited``)."""
        pos = piece.first
        while True:
            with self._fed:
                began = time.monotonic()
                while True:
                    if self._stop.is_set():
                        raise Stopped("the run was stopped")
                    last = piece.last
                    ready = last if last is not None else self._safe_end
                    if ready > pos or last is not None:
                        break
                    self._fed.wait(0.2)
                piece.waited += time.monotonic() - began
            if ready > pos:
                yield from self._stream(pos, ready)
                pos = ready
            if last is not None and pos >= last:
                return

    def _finished(self, audio: Path, record: Path) -> Encoded | None:
        """A piece a stopped run already encoded, if its file and record are whole."""
        try:
            data: dict[str, Any] = json.loads(record.read_text(encoding="utf-8"))
            blocks = data.get("blocks")
            measured = Blocks.from_dict(blocks) if blocks else None
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not audio.is_file() or (self.target is not None and measured is None):
            return None
        return Encoded(audio, measured)

    def _stream(self, first: int, last: int, *, count: bool = True) -> Iterator[np.ndarray]:
        for chunk in self.layout.span(first, last, block=8192):
            if self._stop.is_set():
                raise Stopped("the run was stopped")
            yield chunk
            if count:
                with self._lock:
                    self.encoded_samples += len(chunk)

    def _raise_failure(self) -> None:
        """An encoder that failed stops the run now, not after the whole book."""
        failed = [f for f in self._running.values() if f.done() and f.exception()]
        if failed:
            raise failed[0].exception()  # type: ignore[misc]
        if self._gain is not None and self._gain.done() and self._gain.exception():
            raise self._gain.exception()  # type: ignore[misc]

    # --- the end --------------------------------------------------------------------
    def finish(self, report: Callable[[], Any], every: float = 0.5) -> Generator[Any, None, Joined]:
        """Encode what is left, all threads at once; yield ``report()`` meanwhile."""
        self.poll(lambda _hash: True)
        pieces = yield from self._drain(report, every)
        plan = None
        if self.target is not None:
            assert self._gain is not None
            plan = self._book_loudness(self._gain.result(), pieces)
            miss = self.target - plan.after.integrated_lufs
            if abs(miss) > ACCEPT_LU and not plan.after.silent:
                self.redone = True
                gain = plan.gain_db + miss
                self._gain = _done_future(replace(plan, gain_db=gain))
                self._requeue()
                pieces = yield from self._drain(report, every)
                plan = self._book_loudness(self._gain.result(), pieces)
        return Joined(
            self.layout.timeline(),
            plan,
            [pieces[n].path for n in sorted(pieces)],
            [*self._cuts, self.layout.end],
        )

    def _drain(
        self, report: Callable[[], Any], every: float
    ) -> Generator[Any, None, dict[int, Encoded]]:
        total = self.pieces_known
        while True:
            self._raise_failure()
            self._submit(self._cores)
            if len(self._done) >= total:
                return dict(self._done)
            waiting = list(self._running.values())
            if self._gain is not None and not self._gain.done():
                waiting.append(self._gain)  # type: ignore[arg-type]
            wait(waiting, timeout=every, return_when=FIRST_COMPLETED)
            yield report()

    def _requeue(self) -> None:
        with self._lock:
            self._ready = [
                Piece(n, self._cuts[n], self._piece_last(n), "") for n in sorted(self._done)
            ]
            self._done.clear()

    def _book_loudness(self, prefix: LoudnessPlan, pieces: dict[int, Encoded]) -> LoudnessPlan:
        blocks = [pieces[n].blocks for n in sorted(pieces)]
        return replace(prefix, after=loudness.combine(b for b in blocks if b is not None))

    def close(self) -> None:
        """Stop the encoders and wait for their threads, as ``Background`` does for one.

        A piece's stream sees the stop within a slice; one blocked writing to an
        encoder that reads slowly does not, so after ``PATIENCE`` the run's ffmpeg
        processes started since this began are killed, which breaks their pipes.
        """
        self._stop.set()
        with self._fed:
            self._fed.notify_all()
        self._pool.shutdown(wait=False, cancel_futures=True)
        running = [f for f in self._running.values() if not f.done()]
        if self._gain is not None and not self._gain.done():
            running.append(self._gain)  # type: ignore[arg-type]
        if running and wait(running, timeout=PATIENCE).not_done:
            kill_children(but=self._before)
            wait(running, timeout=GRACE)

    def keep(self) -> set[str]:
        """File names in the job's pieces folder this book still uses."""
        names = set()
        for encoded in self._done.values():
            names |= {encoded.path.name, encoded.path.with_suffix(".json").name}
        return names


RAW = ".pcm"
"""The suffix of a piece kept as raw PCM (int16, little-endian, mono, the book's rate)."""


def write_normalised(
    path: Path,
    pcm: Iterator[np.ndarray],
    sample_rate: int,
    filters: str,
    log: list[str] | None = None,
) -> None:
    """A piece through ``filters``, kept as FLAC or, for a ``.pcm`` path, raw PCM,
    written to a temp name and renamed. ``log``: what ffmpeg printed (its measurement)."""
    raw = path.suffix == RAW
    binary = ffmpeg.find_ffmpeg(None if raw else "flac")
    args = ["-af", filters] if filters else []
    if raw:
        args += ["-f", "s16le", "-ar", str(sample_rate), "-ac", "1"]
    else:  # level 0: the fastest; speech with its pauses still packs to about half
        args += ["-c:a", "flac", "-compression_level", "0", "-f", "flac"]
    with replacing(path, suffix=f".partial{path.suffix}") as tmp:
        ffmpeg.encode_pcm(binary, pcm, sample_rate, [*args, str(tmp)], what=path.name, log=log)


COUNTING = "volumedetect"
"""Appended to the streamed M4B piece's chain (after its int16): it logs the samples it
saw (``n_samples``), about 0.05 s of CPU for 20 minutes of audio. ffmpeg 5.1 and 9.0 give
the chain's output its input's length (docs/BENCHMARKS.md, section 14.6); this checks it."""
_COUNTED = re.compile(r"n_samples: (\d+)")


def count_samples(log: str) -> int:
    """What ``COUNTING`` logged: the samples that went through it."""
    found = _COUNTED.findall(log)
    if not found:
        raise SynthesisError("ffmpeg printed no sample count")
    return int(found[-1])


def read_pieces(paths: list[Path], sample_rate: int, block: int = 1 << 16) -> Iterator[np.ndarray]:
    """The PCM of ``write_normalised``'s pieces, one after another, in blocks."""
    for path in paths:
        if path.suffix != RAW:
            yield from ffmpeg.decode_pcm(path, sample_rate)
            continue
        with path.open("rb") as file:
            while data := file.read(2 * block):
                yield np.frombuffer(data, dtype="<i2")


def _done_future(value: LoudnessPlan) -> Future[LoudnessPlan]:
    future: Future[LoudnessPlan] = Future()
    future.set_result(value)
    return future
