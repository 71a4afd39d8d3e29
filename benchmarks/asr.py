"""Word error rate of a synthesised WAV, heard by an offline recogniser (pocketsphinx).

    python benchmarks/asr.py audio.wav text.txt

The audio is resampled to 16 kHz by ffmpeg, cut into utterances by pocketsphinx's
own voice-activity segmenter (one long utterance makes its decoder lose its way),
and each is decoded with the US English model it ships. The reference is the text
as voicekit's normaliser spells it out (numbers, abbreviations), lower case, no
punctuation: what either tool should say. The absolute figure says as much about
pocketsphinx as about the voice; compare tools on the same text and model.
"""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path

import numpy as np


def transcribe(wav: Path) -> str:
    from pocketsphinx import Decoder, Segmenter

    from voicekit.formats.ffmpeg import decode_pcm

    pcm = np.concatenate(list(decode_pcm(wav, 16000)))
    decoder = Decoder(samprate=16000, logfn="/dev/null")
    words: list[str] = []
    for segment in Segmenter(sample_rate=16000).segment(io.BytesIO(pcm.tobytes())):
        decoder.start_utt()
        decoder.process_raw(segment.pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        if hyp is not None:
            words += hyp.hypstr.split()
    return " ".join(words)


def spoken(text: str) -> str:
    """The reference: the text as it is meant to be read, as plain lower-case words."""
    from voicekit.text.normalize import normalize_text

    said = normalize_text(text, "en")
    said = said.replace("’", "'").lower()
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", said).split())


def wer(wav: Path, text: str) -> float:
    import jiwer

    return float(jiwer.wer(spoken(text), transcribe(wav)))


if __name__ == "__main__":
    print(f"{wer(Path(sys.argv[1]), Path(sys.argv[2]).read_text(encoding='utf-8')):.4f}")
