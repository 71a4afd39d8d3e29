"""Captions: a cue per sentence of the book, cut in the pauses, from the real lengths."""

from __future__ import annotations

import re
import textwrap
import wave
from pathlib import Path

import numpy as np
import pytest

from voicekit.errors import InputError
from voicekit.settings import SynthSettings
from voicekit.synth.captions import Cue, parse_formats, render_srt, render_vtt, split_text
from voicekit.synth.pipeline import RunOptions, Synthesizer
from voicekit.text.model import Book, BookMeta, Chapter

LONG = (
    "The letter said, in the careful language of men who did not expect to be obeyed, "
    "that the light was to burn again by the 1st of November, and that the keeper would "
    "be paid $14.50 a week, with coal and oil supplied."
)
BOOK = Book(
    BookMeta(title="Harbour"),
    [
        Chapter(1, "Chapter I", ["Mr. Ellis climbed the hill. He was 52.", LONG]),
        Chapter(2, "Chapter II", ["Mrs. Penhallow sold him bread & candles.", "- Bread"]),
    ],
)


def test_formats_parse_and_refuse() -> None:
    assert parse_formats("srt, VTT,srt") == ("srt", "vtt")
    assert parse_formats(None) == ()
    with pytest.raises(InputError, match="ass"):
        parse_formats("srt,ass")


def test_long_sentences_become_cues_of_two_short_lines() -> None:
    chunks = split_text(LONG)
    assert len(chunks) > 1
    assert " ".join(chunks) == LONG
    for chunk in chunks:
        assert len(textwrap.wrap(chunk, 42)) <= 2
    assert split_text("Short.") == ["Short."]


def test_srt_and_vtt_text() -> None:
    cues = [Cue(0, 0, 22050, "A & B <c>"), Cue(1, 44100, 66150, "Next.")]
    srt = render_srt(cues, 22050)
    assert srt.startswith("1\n00:00:00,000 --> 00:00:01,000\nA & B <c>\n\n2\n00:00:02,000")
    vtt = render_vtt(cues, 22050, {0: "One", 1: "Two"}, "Book")
    assert vtt.startswith("WEBVTT - Book\n\nNOTE chapter: One\n\n1 One\n00:00:00.000 --> ")
    assert "A &amp; B &lt;c&gt;" in vtt and "NOTE chapter: Two\n\n2 Two\n00:00:02.000" in vtt


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64)
        return pcm, w.getframerate()


def _parse(path: Path) -> list[tuple[float, float, str]]:
    cues = []
    stamp = r"(\d+):(\d\d):(\d\d)[,.](\d\d\d)"
    for block in path.read_text(encoding="utf-8").split("\n\n"):
        lines = block.strip().split("\n")
        for i, line in enumerate(lines):
            if m := re.fullmatch(f"{stamp} --> {stamp}", line):
                g = [int(x) for x in m.groups()]
                start = g[0] * 3600 + g[1] * 60 + g[2] + g[3] / 1000
                end = g[4] * 3600 + g[5] * 60 + g[6] + g[7] / 1000
                cues.append((start, end, " ".join(lines[i + 1 :])))
    return cues


def _rms(pcm: np.ndarray, rate: int, at: float, half: float) -> float:
    lo, hi = max(0, int((at - half) * rate)), int((at + half) * rate)
    part = pcm[lo:hi]
    return float(np.sqrt(np.mean(part**2))) if len(part) else 0.0


@pytest.mark.slow
def test_captions_of_a_book(tmp_path: Path, cpu_settings: SynthSettings) -> None:
    synth = Synthesizer(cpu_settings)
    plan = synth.plan(BOOK)
    out = tmp_path / "book.wav"
    list(synth.run(plan, out, RunOptions(captions=("srt", "vtt"))))
    cues = _parse(tmp_path / "book.srt")
    sources = [s for b in plan.buckets for s in b.sources if s]
    # the book's own text, sentence by sentence; a cue count from the plan
    assert len(cues) == sum(len(split_text(s)) for s in sources)
    assert " ".join(c[2] for c in cues) == " ".join(sources)
    texts = [c[2] for c in cues]
    assert "Mr. Ellis climbed the hill." in texts and "He was 52." in texts
    assert "Mrs. Penhallow sold him bread & candles." in texts
    assert any("$14.50" in t for t in texts) and not any("fourteen" in t for t in texts)
    pcm, rate = _read_wav(out)
    total = len(pcm) / rate
    previous_end = 0.0
    for start, end, text in cues:
        assert 0 <= previous_end <= start < end <= total + 0.001, text
        previous_end = end
        middle = _rms(pcm, rate, (start + end) / 2, (end - start) / 4)
        for edge in (start, end):  # the audio is quieter at every cue boundary
            assert _rms(pcm, rate, edge, 0.01) < middle, (text, edge)
    vtt = (tmp_path / "book.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT")
    assert "NOTE chapter: Chapter I\n" in vtt and "NOTE chapter: Chapter II\n" in vtt
    assert [c[:2] for c in _parse(tmp_path / "book.vtt")] == [c[:2] for c in cues]


@pytest.mark.slow
def test_split_chapters_get_a_caption_file_each(
    tmp_path: Path, cpu_settings: SynthSettings
) -> None:
    synth = Synthesizer(cpu_settings)
    playlist = tmp_path / "book" / "book.m3u8"
    playlist.parent.mkdir()
    list(synth.run(synth.plan(BOOK), playlist, RunOptions(split=True, captions=("vtt",))))
    files = sorted(playlist.parent.glob("*.vtt"))
    assert [f.name for f in files] == ["01 - Chapter I.vtt", "02 - Chapter II.vtt"]
    second = _parse(files[1])
    assert second[0][2] == "Chapter II" and second[0][0] < 0.5  # times start with the file
    for vtt in files:
        pcm, rate = _read_wav(vtt.with_suffix(".wav"))
        assert _parse(vtt)[-1][1] <= len(pcm) / rate + 0.001


def test_an_existing_caption_file_or_the_input_is_not_replaced(
    tmp_path: Path, cpu_settings: SynthSettings
) -> None:
    from voicekit.errors import OutputError

    source = tmp_path / "book.md"
    source.write_text("Hello.\n", encoding="utf-8")
    book = Book(BookMeta(title="T"), [Chapter(1, "", ["Hello."])], source=source)
    (tmp_path / "book.srt").write_text("mine", encoding="utf-8")
    synth = Synthesizer(cpu_settings)
    plan = synth.plan(book)
    out = tmp_path / "book.wav"
    with pytest.raises(OutputError, match=r"book\.srt exists"):
        list(synth.run(plan, out, RunOptions(captions=("srt",))))
    with pytest.raises(OutputError, match="would replace the input"):
        list(synth.run(plan, out, RunOptions(readalong=source, force=True)))
    assert (tmp_path / "book.srt").read_text() == "mine" and source.read_text() == "Hello.\n"
    assert not out.exists() and not (tmp_path / "book.wav.voicekit-job").exists()
