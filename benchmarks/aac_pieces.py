"""ffmpeg's AAC coders on real voice, and a book encoded as pieces + joined vs one encode.

    pip install --target /tmp/pesqlib pesq          # optional, benchmarks only
    PYTHONPATH=$PWD:/tmp/pesqlib python benchmarks/aac_pieces.py /tmp/harbour.wav \
        [twoloop,fast[,anmr] [first-N-seconds]]

The WAV is voicekit's own output (mono int16, 22,050 Hz). Each coder encodes it at
64k mono in one ffmpeg process (``VOICEKIT_FFMPEG`` picks the binary); speed is
audio seconds per wall second and per CPU second of ffmpeg (the figure a busy
machine does not distort). Quality against the WAV: PESQ wide-band (ITU-T P.862.2,
the ``pesq`` package; both signals resampled to 16 kHz by ffmpeg; mean over 10 s
segments) when it imports, and always the log-spectral distance (dB, full band,
1024-point frames within 50 dB of the loudest). Then, on the whole WAV only: one
encode with the default coder against 4 pieces cut in pauses, encoded by 2 ffmpeg
processes at once, and their join by stream copy.
"""

from __future__ import annotations

import itertools
import resource
import subprocess
import sys
import tempfile
import time
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from voicekit.formats.encoders import EncodeOptions, encode_m4b
from voicekit.formats.ffmpeg import decode_pcm, find_ffmpeg
from voicekit.formats.pieces import encode_piece, join_pieces
from voicekit.formats.timeline import ChapterMark, Timeline


def children_cpu() -> float:
    """User + system seconds of finished child processes (the ffmpegs): load-proof."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), "<i2"), w.getframerate()


def lsd(ref: np.ndarray, out: np.ndarray, n: int = 1024) -> float:
    frames = min(len(ref), len(out)) // n
    a = np.abs(np.fft.rfft(ref[: frames * n].reshape(frames, n) * np.hanning(n), axis=1)) ** 2
    b = np.abs(np.fft.rfft(out[: frames * n].reshape(frames, n) * np.hanning(n), axis=1)) ** 2
    energy = a.sum(axis=1)
    keep = energy > energy.max() * 1e-5
    d = 10 * np.log10((a[keep] + 1e-3) / (b[keep] + 1e-3))
    return float(np.mean(np.sqrt(np.mean(d**2, axis=1))))


def pesq_wb(binary: str, wav: Path, coded: Path, segment: int = 10) -> float | None:
    """Mean PESQ-WB over consecutive 10 s segments (P.862 is meant for utterances of
    8-20 s, not a whole chapter); segments PESQ finds no speech in are left out."""
    try:
        from pesq import PesqError, pesq
    except ImportError:
        return None
    ref = np.concatenate(list(decode_pcm(wav, 16000, binary))).astype(np.float32)
    out = np.concatenate(list(decode_pcm(coded, 16000, binary))).astype(np.float32)
    n, step = min(len(ref), len(out)), segment * 16000
    scores = []
    for a in range(0, n - step + 1, step):
        try:
            scores.append(pesq(16000, ref[a : a + step], out[a : a + step], "wb"))
        except PesqError:
            continue
    return float(np.mean(scores)) if scores else None


def encode(binary: str, wav: Path, out: Path, coder: str) -> tuple[float, float]:
    """Wall and CPU seconds of one encode."""
    start, cpu = time.perf_counter(), children_cpu()
    subprocess.run(
        [binary, "-v", "error", "-y", "-i", str(wav), "-c:a", "aac", "-b:a", "64k",
         "-aac_coder", coder, "-strict", "experimental", "-f", "mp4", str(out)],
        check=True,
    )  # fmt: skip
    return time.perf_counter() - start, children_cpu() - cpu


def pause_cuts(pcm: np.ndarray, parts: int, frame: int = 1024) -> list[int]:
    """Cuts near each 1/parts of the book, in the middle of a run of digital silence."""
    silent = np.convolve(np.abs(pcm.astype(np.int32)) <= 1, np.ones(4096), "same") >= 4096
    cuts = []
    for k in range(1, parts):
        spots = np.flatnonzero(silent[k * len(pcm) // parts :]) + k * len(pcm) // parts
        cuts.append(round(int(spots[0]) / frame) * frame)
    return cuts


def main() -> None:
    wav = Path(sys.argv[1])
    pcm, rate = read_wav(wav)
    seconds = len(pcm) / rate
    binary = find_ffmpeg("aac")
    version = subprocess.run([binary, "-version"], capture_output=True, text=True).stdout
    print(f"{wav}: {len(pcm) / rate:.0f} s at {rate} Hz; {binary}: {version.split()[2]}")
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        if len(sys.argv) > 3:  # an excerpt: the first N seconds
            pcm = pcm[: int(float(sys.argv[3]) * rate)]
            wav = tmp / "excerpt.wav"
            with wave.open(str(wav), "wb") as w:
                w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
                w.writeframes(pcm.tobytes())
            seconds = len(pcm) / rate
        coders = sys.argv[2].split(",") if len(sys.argv) > 2 else ["twoloop", "fast"]
        for coder in coders:
            out = tmp / f"{coder}.m4a"
            wall, cpu = encode(binary, wav, out, coder)
            dec = np.concatenate(list(decode_pcm(out, rate, binary)))
            score = pesq_wb(binary, wav, out)
            print(f"coder {coder:8} {seconds / wall:6.1f}x real time ({wall:.1f} s wall, "
                  f"{seconds / cpu:.1f}x per CPU second)  "
                  f"PESQ-WB {score if score is None else round(score, 3)}  "
                  f"LSD {lsd(pcm, dec):.2f} dB  size {out.stat().st_size // 1024} KiB")  # fmt: skip

        if len(sys.argv) > 3:
            return  # the join is timed on the whole book only
        cuts = pause_cuts(pcm, 4)
        bounds = [0, *cuts, len(pcm)]
        spans = enumerate(itertools.pairwise(bounds))
        marks = [ChapterMark(n, f"Part {n + 1}", a, b) for n, (a, b) in spans]
        tl = Timeline(rate, len(pcm), marks)
        start, cpu0 = time.perf_counter(), children_cpu()
        encode_m4b(tmp / "single.m4b", tl, [pcm], EncodeOptions())
        single, single_cpu = time.perf_counter() - start, children_cpu() - cpu0

        def piece(n: int) -> Path:
            path = tmp / f"piece{n}.m4a"
            a, b = bounds[n], bounds[n + 1]
            encode_piece(path, [pcm[a:b]], rate, length=b - a, bitrate=None)
            return path

        start, cpu0 = time.perf_counter(), children_cpu()
        with ThreadPoolExecutor(2) as pool:
            pieces = list(pool.map(piece, range(len(marks))))
        encoded, encoded_cpu = time.perf_counter() - start, children_cpu() - cpu0
        start, cpu0 = time.perf_counter(), children_cpu()
        join_pieces(tmp / "joined.m4b", pieces, tl, EncodeOptions())
        joined, joined_cpu = time.perf_counter() - start, children_cpu() - cpu0
        print(f"single encode {single:.1f} s ({single_cpu:.1f} s CPU); {len(pieces)} pieces "
              f"on 2 processes {encoded:.1f} s ({encoded_cpu:.1f} s CPU) + join {joined:.2f} s "
              f"({joined_cpu:.2f} s CPU)")  # fmt: skip


if __name__ == "__main__":
    main()
