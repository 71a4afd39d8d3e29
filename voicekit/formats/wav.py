"""Streaming 16-bit PCM WAV writer that turns into RF64 past 4 GiB.

Python's ``wave`` module cannot write RF64, which a long book at 22 kHz needs
(about 27 hours fill 4 GiB), so this writer reserves a JUNK chunk in the header
and turns it into ``ds64`` when the data outgrows 32-bit sizes (EBU Tech 3306).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

_U32_MAX = 0xFFFFFFFF
_HEADER = 12 + 8 + 28 + 8 + 16 + 8  # RIFF/WAVE, JUNK(28), fmt(16), data header


class WavWriter:
    """Write int16 mono (or interleaved) PCM in pieces; sizes are fixed on close()."""

    def __init__(
        self, path: Path, sample_rate: int, channels: int = 1, *, max_riff_size: int = _U32_MAX
    ) -> None:
        self.path = path
        self.sample_rate = sample_rate
        self.channels = channels
        self.data_bytes = 0
        self._max_riff = max_riff_size  # lowered in tests to exercise RF64 cheaply
        self._fh: BinaryIO = path.open("wb")
        self._fh.write(self._header(riff_size=0, data_size=0, rf64=False))

    def _header(self, riff_size: int, data_size: int, rf64: bool) -> bytes:
        block_align = 2 * self.channels
        fmt = struct.pack(
            "<HHIIHH",
            1,
            self.channels,
            self.sample_rate,
            self.sample_rate * block_align,
            block_align,
            16,
        )
        if rf64:  # ds64 takes the JUNK chunk's place (same size): the audio stays put
            ds64 = struct.pack("<QQQI", riff_size, data_size, data_size // block_align, 0)
            head = b"RF64" + struct.pack("<I", _U32_MAX) + b"WAVE" + _chunk(b"ds64", ds64)
            data_size = _U32_MAX  # the real size is in ds64
        else:
            head = b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + _chunk(b"JUNK", bytes(28))
        return head + _chunk(b"fmt ", fmt) + b"data" + struct.pack("<I", data_size)

    def write(self, pcm: np.ndarray) -> None:
        data = np.ascontiguousarray(pcm, dtype="<i2").tobytes()
        self._fh.write(data)
        self.data_bytes += len(data)

    def close(self) -> None:
        if self._fh.closed:
            return
        riff_size = _HEADER - 8 + self.data_bytes
        header = self._header(riff_size, self.data_bytes, rf64=riff_size > self._max_riff)
        self._fh.seek(0)
        self._fh.write(header)
        self._fh.close()

    def __enter__(self) -> WavWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body


def float_to_pcm16(audio: np.ndarray, volume: float = 1.0) -> np.ndarray:
    """Float audio in [-1, 1] to int16, rounded and clipped."""
    scaled = np.asarray(audio, dtype=np.float32) * (32767.0 * volume)
    return np.clip(np.rint(scaled), -32767, 32767).astype(np.int16)
