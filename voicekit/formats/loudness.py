"""Loudness: measure a whole book, then one gain and a true-peak limiter for all of it.

The target is an integrated loudness (ITU-R BS.1770 / EBU R 128 gating, as ffmpeg's
``ebur128`` measures it) with a true-peak ceiling. The default, -20 LUFS and
-3 dBTP, is chosen for ACX, the strictest audiobook retailer: it asks for an RMS
between -23 and -18 dB and peaks at or below -3 dB. Speech at -20 LUFS measures
about -20.5 to -21.5 dB RMS once its pauses are counted, the middle of that window.
(EBU R 128's -23 LUFS is a broadcast target: with pauses counted it would fall
below ACX's -23 dB floor.)

How, for a stream that is never all in memory:

1. measure the book's PCM as it is (ffmpeg's ``ebur128`` scanner, one pass);
2. gain = target - measured, one number for the whole book (never per sentence
   or chapter, so the level never jumps; split chapter files get the same gain);
3. the gain, then a limiter run at 4x the sample rate (so inter-sample peaks, the
   "true" peaks, are seen) with its ceiling below the true-peak limit;
4. the limiter takes a little loudness off a peaky voice, so the chain is measured
   again and the gain corrected (at most twice) until it lands within 0.3 LU.

A book encoded in pieces (synth/finish.py) measures every piece's true peak as it
encodes it, so its gain is planned without true peaks (the same gain: the passes
read only the integrated loudness), which is most of the scanner's time: 1.2
against 2.3 s of ffmpeg on harbour's first two minutes.

The PCM then goes through that chain on its way to the encoder (``apply``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from voicekit.errors import SynthesisError
from voicekit.formats import ffmpeg

DEFAULT_TARGET_LUFS = -20.0
DEFAULT_TRUE_PEAK_DBTP = -3.0
TOLERANCE_LU = 0.3
"""How close the corrected gain must bring the chain to the target (the promise is 1 LU)."""
LOSSY_MARGIN_DB = 1.0
"""Extra headroom under the ceiling for lossy encoders (AAC, MP3, Opus add overshoot)."""
OVERSAMPLE = 4
_MAX_CORRECTIONS = 2
_SILENT = -70.0  # ebur128 reports -70 LUFS (its gate) for silence, and -inf peaks

PcmFactory = Callable[[], Iterable[np.ndarray]]
"""Gives a fresh PCM stream of the same audio each call (a job reads it from disk)."""


@dataclass(frozen=True)
class Measurement:
    """What ebur128 measured of a stream."""

    integrated_lufs: float
    lra: float
    true_peak_dbtp: float

    @property
    def silent(self) -> bool:
        return self.integrated_lufs <= _SILENT or math.isinf(self.true_peak_dbtp)


@dataclass(frozen=True)
class LoudnessPlan:
    """One book's gain and limiter, and what the result measures."""

    target_lufs: float
    true_peak_dbtp: float
    """The ceiling asked for."""
    gain_db: float
    ceiling_dbtp: float
    """Where the limiter is set (the ceiling less the margin a lossy encoder needs)."""
    before: Measurement
    after: Measurement
    """The PCM as it goes to the encoder."""

    def filters(self, sample_rate: int) -> str:
        return chain(self.gain_db, self.ceiling_dbtp, sample_rate)

    def to_dict(self) -> dict[str, float]:
        """The run summary's ``loudness`` (``--json``)."""
        return {
            "target_lufs": self.target_lufs,
            "integrated_lufs": round(self.after.integrated_lufs, 2),
            "lra": round(self.after.lra, 2),
            "true_peak_dbtp": round(self.after.true_peak_dbtp, 2),
            "gain_db": round(self.gain_db, 2),
        }


def chain(gain_db: float, ceiling_dbtp: float, sample_rate: int) -> str:
    """The ffmpeg filters: gain, then a look-ahead limiter at 4x the rate, back to the rate."""
    limit = 10 ** (ceiling_dbtp / 20)
    high = sample_rate * OVERSAMPLE
    # level=false: alimiter otherwise raises everything to the limit (a second, hidden
    # gain); latency=true: no 5 ms shift, so chapter marks and sample counts stay exact
    return (
        f"volume={gain_db:.3f}dB:precision=float,aresample={high},"
        f"alimiter=limit={limit:.5f}:attack=1:release=60:level=false:latency=true,"
        f"aresample={sample_rate}"
    )


_SUMMARY = re.compile(
    r"Integrated loudness:\s+I:\s+(?P<i>\S+) LUFS.*?"
    r"Loudness range:\s+LRA:\s+(?P<lra>\S+) LU.*?"
    r"True peak:\s+Peak:\s+(?P<tp>\S+) dBFS",
    re.S,
)
_SUMMARY_NO_PEAK = re.compile(
    r"Integrated loudness:\s+I:\s+(?P<i>\S+) LUFS.*?Loudness range:\s+LRA:\s+(?P<lra>\S+) LU",
    re.S,
)


def _number(value: str) -> float:
    try:
        return float(value)  # "-inf" parses too (the true peak of silence)
    except ValueError:
        raise SynthesisError(f"ffmpeg's loudness report has a bad value: {value!r}") from None


def measure(
    pcm: Iterable[np.ndarray], sample_rate: int, filters: str = "", *, peak: bool = True
) -> Measurement:
    """Integrated loudness, loudness range and true peak of ``pcm`` (after ``filters``);
    ``peak`` False: no true peak (NaN), which is most of the scanner's time.

    ffmpeg's ``ebur128`` scanner (BS.1770 gating; true peak by oversampling): about
    three times faster than ``loudnorm``'s measuring mode, which works at 192 kHz.
    framelog=verbose keeps its per-frame lines out of the info level we read.
    """
    binary = ffmpeg.find_ffmpeg()
    measuring = "ebur128=peak=true:framelog=verbose" if peak else "ebur128=framelog=verbose"
    text = ffmpeg.analyse_pcm(
        binary,
        pcm,
        sample_rate,
        f"{filters},{measuring}" if filters else measuring,
        what="measure the loudness",
    )
    found = (_SUMMARY if peak else _SUMMARY_NO_PEAK).search(text[text.rfind("Summary:") :])
    if found is None:
        raise SynthesisError("ffmpeg printed no loudness measurement")
    return Measurement(
        integrated_lufs=_number(found["i"]),
        lra=_number(found["lra"]),
        true_peak_dbtp=_number(found["tp"]) if peak else math.nan,
    )


def plan(
    source: PcmFactory,
    sample_rate: int,
    *,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    true_peak_dbtp: float = DEFAULT_TRUE_PEAK_DBTP,
    lossy: bool = True,
    peaks: bool = True,
) -> LoudnessPlan:
    """Measure ``source`` and find the one gain that brings it to the target under the ceiling.

    Reads the stream two to four times (PCM from disk: seconds for an hour of audio).
    Silence gets no gain (there is nothing to bring up). ``peaks`` False: the same gain,
    with no true peak measured (NaN in ``before`` and ``after``).
    """
    ceiling = true_peak_dbtp - (LOSSY_MARGIN_DB if lossy else 0.2)
    before = measure(source(), sample_rate, peak=peaks)
    if before.silent:
        return LoudnessPlan(target_lufs, true_peak_dbtp, 0.0, ceiling, before, before)
    gain = target_lufs - before.integrated_lufs
    after = measure(source(), sample_rate, chain(gain, ceiling, sample_rate), peak=peaks)
    for _ in range(_MAX_CORRECTIONS):
        miss = target_lufs - after.integrated_lufs
        if abs(miss) <= TOLERANCE_LU:
            break
        gain += miss
        after = measure(source(), sample_rate, chain(gain, ceiling, sample_rate), peak=peaks)
    return LoudnessPlan(target_lufs, true_peak_dbtp, gain, ceiling, before, after)


def apply(
    pcm: Iterable[np.ndarray], sample_rate: int, loudness: LoudnessPlan
) -> Iterator[np.ndarray]:
    """``pcm`` through the plan's gain and limiter, streamed."""
    return ffmpeg.filter_pcm(
        ffmpeg.find_ffmpeg(),
        pcm,
        sample_rate,
        loudness.filters(sample_rate),
        what="normalise the loudness",
    )


def normalise(
    source: PcmFactory,
    sample_rate: int,
    *,
    target_lufs: float | None,
    true_peak_dbtp: float = DEFAULT_TRUE_PEAK_DBTP,
    lossy: bool = True,
) -> tuple[Iterable[np.ndarray], LoudnessPlan | None]:
    """The stream to encode and its plan; ``target_lufs`` None: untouched, no plan."""
    if target_lufs is None:
        return source(), None
    found = plan(
        source, sample_rate, target_lufs=target_lufs, true_peak_dbtp=true_peak_dbtp, lossy=lossy
    )
    return apply(source(), sample_rate, found), found


# --- measuring a book in pieces -----------------------------------------------------
# A book encoded chapter by chapter while it is synthesised is never one stream, so its
# loudness is put together from each piece's BS.1770 blocks: ebur128 logs the momentary
# loudness (a 400 ms block) and the short-term loudness (3 s) every 100 ms, which are
# exactly the gating blocks of the integrated loudness and the values of the loudness
# range. Joined, the pieces' blocks are the whole book's, less the few that would
# straddle a cut; cuts lie in the pauses between chapters, where every block is
# silence and gated out either way.

_FRAME_LINE = re.compile(r"\bM:\s*(?P<m>-?[\d.]+|-?inf|nan)\s+S:\s*(?P<s>-?[\d.]+|-?inf|nan)")
_ABSOLUTE_GATE = -70.0
_RELATIVE_GATE_I = -10.0
_RELATIVE_GATE_LRA = -20.0


@dataclass(frozen=True)
class Blocks:
    """One piece's loudness blocks, as ebur128 logged them (LUFS), and its true peak."""

    momentary: tuple[float, ...]
    short_term: tuple[float, ...]
    true_peak_dbtp: float

    def to_dict(self) -> dict[str, object]:
        return {"m": list(self.momentary), "s": list(self.short_term), "tp": self.true_peak_dbtp}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Blocks:
        m, s, tp = data["m"], data["s"], data["tp"]
        if not isinstance(m, list) or not isinstance(s, list) or not isinstance(tp, int | float):
            raise ValueError("not a loudness block record")
        return cls(tuple(float(v) for v in m), tuple(float(v) for v in s), float(tp))


def parse_blocks(text: str) -> Blocks:
    """The blocks and the true peak of one ebur128 run (``framelog=info``) from its log."""
    momentary, short = [], []
    for found in _FRAME_LINE.finditer(text):
        momentary.append(_number(found["m"]))
        short.append(_number(found["s"]))
    summary = _SUMMARY.search(text[text.rfind("Summary:") :])
    if summary is None:
        raise SynthesisError("ffmpeg printed no loudness measurement")
    return Blocks(tuple(momentary), tuple(short), _number(summary["tp"]))


def _mean_lufs(powers: np.ndarray) -> float:
    return -0.691 + 10 * math.log10(float(powers.mean())) if len(powers) else _SILENT


def _power(lufs: np.ndarray) -> np.ndarray:
    return np.power(10.0, (lufs + 0.691) / 10)


def combine(pieces: Iterable[Blocks]) -> Measurement:
    """The integrated loudness, loudness range and true peak of pieces played in a row."""
    pieces = list(pieces)
    m = np.array([v for p in pieces for v in p.momentary], dtype=np.float64)
    s = np.array([v for p in pieces for v in p.short_term], dtype=np.float64)
    peak = max((p.true_peak_dbtp for p in pieces), default=-math.inf)
    m = m[m > _ABSOLUTE_GATE]  # BS.1770: absolute gate, then 10 LU under the gated mean
    integrated = _SILENT
    if len(m):
        gate = _mean_lufs(_power(m)) + _RELATIVE_GATE_I
        integrated = _mean_lufs(_power(m[m > gate]))
    s = s[s > _ABSOLUTE_GATE]  # EBU Tech 3342: 20 LU under, then the 10th to 95th percentile
    lra = 0.0
    if len(s):
        s = s[s > _mean_lufs(_power(s)) + _RELATIVE_GATE_LRA]
        if len(s):
            lra = float(np.percentile(s, 95) - np.percentile(s, 10))
    return Measurement(integrated_lufs=integrated, lra=lra, true_peak_dbtp=peak)


MEASURING = "ebur128=peak=true:framelog=info"
"""Appended to a piece's chain: logs the blocks ``parse_blocks`` reads."""


def measuring(filters: str) -> str:
    """``filters`` (may be empty), ``MEASURING``, and int16: one ffmpeg normalises a piece
    and measures it on the way to its encoder (``parse_blocks`` reads its log).

    The chain works in floating point; the encoder gets int16, as it did from a chain in
    a process of its own, so a piece's samples are those the whole book's chain gives
    (left to itself, ffmpeg hands FLAC 32-bit samples and AAC floats).
    """
    return f"{filters},{MEASURING},{INT16}" if filters else f"{MEASURING},{INT16}"


INT16 = "aformat=sample_fmts=s16"
