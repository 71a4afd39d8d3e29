"""End to end through the engine with the real bundled voice (short texts)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
import wave
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest

from voicekit.errors import OutputError
from voicekit.settings import SynthSettings
from voicekit.synth.pipeline import RunOptions, Synthesizer, default_job_dir
from voicekit.synth.progress import Progress, RunResult
from voicekit.text.model import Book, BookMeta, Chapter

pytestmark = pytest.mark.slow

PARAGRAPHS = ["The quick brown fox jumps over the lazy dog.",
              "It was a bright cold day in April. The clocks were striking thirteen.",
              "Call me Ishmael."]


def make_book(paragraphs: list[str] = PARAGRAPHS) -> Book:
    return Book(BookMeta(title="Test"), [Chapter(1, "Chapter One", list(paragraphs[:2])),
                                         Chapter(2, "Chapter Two", list(paragraphs[2:]))])


def run(settings: SynthSettings, out: Path, book: Book | None = None, **kw: object
        ) -> RunResult:
    synth = Synthesizer(settings)
    options = RunOptions(**kw)  # type: ignore[arg-type]
    events: list[Progress] = list(synth.run(synth.plan(book or make_book()), out, options))
    result = events[-1].result
    assert result is not None
    return result


def test_end_to_end_wav(tmp_path: Path, cpu_settings: SynthSettings) -> None:
    out = tmp_path / "book.wav"
    synth = Synthesizer(cpu_settings)
    events = list(synth.run(synth.plan(make_book()), out))
    stages = [e.phase for e in events]
    assert stages[0] == "load" and stages[-2:] == ["assemble", "done"]
    synth_events = [e for e in events if e.phase == "synth"]
    assert [e.buckets_done for e in synth_events] == list(range(1, len(synth_events) + 1))
    assert all(e.rtf and e.rtf > 0 and e.memory and e.memory.rss_mb > 0 for e in synth_events)
    result = events[-1].result
    assert result is not None and result.chapters == 2
    with wave.open(str(out)) as w:
        seconds = w.getnframes() / w.getframerate()
        assert w.getframerate() == 22050
    assert seconds == pytest.approx(result.audio_seconds, abs=0.01)
    assert 6 < seconds < 30  # five short sentences and two titles
    assert not default_job_dir(out).exists()  # removed after success


def test_same_seed_same_audio_other_seed_other_audio(tmp_path: Path,
                                                     cpu_settings: SynthSettings) -> None:
    run(cpu_settings, tmp_path / "a.wav")
    run(cpu_settings, tmp_path / "b.wav")
    run(cpu_settings.replace(seed=99), tmp_path / "c.wav")
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.wav", "b.wav", "c.wav"))
    assert a == b
    assert a != c


def test_resume_redoes_only_missing_buckets_and_gives_identical_audio(
        tmp_path: Path, cpu_settings: SynthSettings) -> None:
    first = run(cpu_settings, tmp_path / "a.wav", keep_work=True)
    job = Path(first.job_dir or "")
    segments = sorted(job.glob("segments/*.npz"))
    assert len(segments) == first.buckets
    segments[1].unlink()
    segments[3].write_bytes(b"damaged")  # a torn write is redone, not trusted
    again = run(cpu_settings, tmp_path / "a.wav", force=True)
    assert (again.buckets_synthesized, again.buckets_resumed) == (2, first.buckets - 2)
    run(cpu_settings, tmp_path / "fresh.wav")
    assert (tmp_path / "a.wav").read_bytes() == (tmp_path / "fresh.wav").read_bytes()


def test_editing_a_paragraph_resynthesizes_only_its_bucket(
        tmp_path: Path, cpu_settings: SynthSettings) -> None:
    out = tmp_path / "a.wav"
    first = run(cpu_settings, out, keep_work=True)
    edited = list(PARAGRAPHS)
    edited[2] = "Call me Ishmael, said the sailor."
    second = run(cpu_settings, out, make_book(edited), force=True, keep_work=True)
    assert second.buckets == first.buckets
    assert (second.buckets_synthesized, second.buckets_resumed) == (1, first.buckets - 1)
    # the job keeps only what the current text needs
    assert len(list(Path(second.job_dir or "").glob("segments/*.npz"))) == second.buckets


def test_abandoned_run_keeps_its_work_and_output_appears_only_when_complete(
        tmp_path: Path, cpu_settings: SynthSettings) -> None:
    out = tmp_path / "a.wav"
    synth = Synthesizer(cpu_settings)
    events = synth.run(synth.plan(make_book()), out)
    for event in events:
        if event.phase == "synth" and event.buckets_done == 2:
            break
    events.close()  # what an exception or Ctrl-C does to the generator
    assert not out.exists()
    assert len(list(default_job_dir(out).glob("segments/*.npz"))) == 2
    resumed = run(cpu_settings, out)
    assert resumed.buckets_resumed == 2
    run(cpu_settings, tmp_path / "fresh.wav")
    assert out.read_bytes() == (tmp_path / "fresh.wav").read_bytes()


def test_existing_output_is_kept_unless_forced(tmp_path: Path,
                                               cpu_settings: SynthSettings) -> None:
    out = tmp_path / "a.wav"
    out.write_bytes(b"precious")
    synth = Synthesizer(cpu_settings)
    with pytest.raises(OutputError, match="exists; use --force"):
        list(synth.run(synth.plan(make_book()), out))
    assert out.read_bytes() == b"precious"
    run(cpu_settings, out, force=True)
    assert out.read_bytes()[:4] == b"RIFF"


def test_silence_settings_shape_the_output(tmp_path: Path, cpu_settings: SynthSettings) -> None:
    short = run(cpu_settings, tmp_path / "a.wav", keep_work=True)
    longer = run(cpu_settings.replace(chapter_silence=3.3), tmp_path / "b.wav",
                 job_dir=Path(short.job_dir or ""))
    # pauses are not part of a bucket's audio: all of the first run's buckets are reused
    assert longer.buckets_resumed == longer.buckets and longer.buckets_synthesized == 0
    # one chapter break: 3.0 s more
    assert longer.audio_seconds - short.audio_seconds == pytest.approx(3.0, abs=0.01)


def test_repeated_text_is_made_once_and_used_twice(tmp_path: Path,
                                                   cpu_settings: SynthSettings) -> None:
    book = Book(BookMeta(title="T"), [Chapter(1, "", ["Oh dear!", "Call me Ishmael.",
                                                      "Oh dear!"])])
    result = run(cpu_settings.replace(speak_titles=False), tmp_path / "r.wav", book=book)
    assert (result.buckets, result.buckets_synthesized, result.buckets_repeated) == (3, 2, 1)
    once = run(cpu_settings.replace(speak_titles=False), tmp_path / "o.wav",
               book=Book(BookMeta(title="T"), [Chapter(1, "", ["Oh dear!", "Call me Ishmael."])]))
    assert result.audio_seconds > once.audio_seconds + 0.5  # said twice in the audio


def test_cover_is_kept_under_the_extension_of_its_type(tmp_path: Path,
                                                       cpu_settings: SynthSettings) -> None:
    webp = b"RIFF\x1a\x00\x00\x00WEBPVP8 " + bytes(14)  # only the header is looked at
    book = Book(BookMeta(title="T", cover=webp, cover_mime="image/webp"),
                [Chapter(1, "", ["Call me Ishmael."])])
    result = run(cpu_settings, tmp_path / "w.wav", book=book, keep_work=True)
    job = Path(result.job_dir or "")
    assert [p.name for p in job.glob("cover*")] == ["cover.webp"]
    assert (job / "cover.webp").read_bytes() == webp


def test_onnxruntime_on_cuda_gets_batches_of_the_planned_size(
        tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression: the pipeline read getattr(backend, "batch_sentences", 1), which OrtBackend
    lacked, so onnxruntime on CUDA got one bucket per call instead of its batch of 8."""
    import onnxruntime

    from voicekit.backends.base import BACKENDS
    from voicekit.system import ortcuda
    from voicekit.system.devices import DeviceChoice

    seen: list[int] = []  # sentences per encoder call
    real_session = onnxruntime.InferenceSession

    class CudaLookingSession(real_session):  # type: ignore[misc, valid-type]
        """A real CPU session that says it runs on CUDA, and counts the encoder's batches."""

        def __init__(self, path: str, opts: object = None, providers: object = None) -> None:
            super().__init__(path, opts, providers=["CPUExecutionProvider"])
            self.encoder = "encoder" in Path(path).name

        def get_providers(self) -> list[str]:
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def run(self, outputs, feeds, *rest):  # type: ignore[no-untyped-def]
            if self.encoder:
                seen.append(len(feeds["input_lengths"]))
            return super().run(outputs, feeds, *rest)

    monkeypatch.setattr(onnxruntime, "InferenceSession", CudaLookingSession)
    monkeypatch.setattr(ortcuda, "preload_cuda_libraries", lambda: None)
    one_sentence_paragraphs = [f"Line number {n} is here." for n in range(12)]
    book = Book(BookMeta(title="T"), [Chapter(1, "One", one_sentence_paragraphs)])
    synth = Synthesizer(cpu_settings.replace(speak_titles=False),
                        choice=DeviceChoice("cuda:0", "ort"))
    events = list(synth.run(synth.plan(book), tmp_path / "b.wav"))
    assert events[-1].result is not None
    assert sum(seen) == 12
    assert max(seen) == BACKENDS["ort"].cuda_batch == 8


def _wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def test_audio_figure_counts_the_pauses_and_repeats_the_file_will_hold(
        tmp_path: Path, cpu_settings: SynthSettings) -> None:
    # issue 12: the panel ended at 04:02 for a file of 04:25 (pauses were left out)
    said_twice = "Oh dear! It was a bright cold day in April."
    book = Book(BookMeta(title="T"), [
        Chapter(1, "Chapter One", [said_twice, "Call me Ishmael.", said_twice]),
        Chapter(2, "Chapter Two", ["The clocks were striking thirteen. The end."])])
    settings = cpu_settings.replace(sentence_silence=0.4, paragraph_silence=0.8,
                                    chapter_silence=1.6)
    out = tmp_path / "a.wav"

    def synth_events(**kw: object) -> list[Progress]:
        synth = Synthesizer(settings)
        events = list(synth.run(synth.plan(book), out, RunOptions(**kw)))  # type: ignore[arg-type]
        return [e for e in events if e.phase == "synth"]

    first = synth_events(keep_work=True)
    figures = [e.audio_seconds for e in first]
    assert figures == sorted(figures)
    assert first[-1].audio_seconds == pytest.approx(_wav_seconds(out), abs=0.05)
    # resumed: the job's finished buckets count with their pauses too
    job = default_job_dir(out)
    sorted(job.glob("segments/*.npz"))[0].unlink()
    again = synth_events(force=True)
    assert len(again) == 1 and again[0].buckets_resumed > 0
    assert again[-1].audio_seconds == pytest.approx(_wav_seconds(out), abs=0.05)


def test_synth_events_carry_the_chapter_and_the_start_of_the_sentence(
        tmp_path: Path, cpu_settings: SynthSettings) -> None:
    synth = Synthesizer(cpu_settings)
    events = [e for e in synth.run(synth.plan(make_book()), tmp_path / "a.wav")
              if e.phase == "synth"]
    said = {(e.chapter_title, e.sentence) for e in events}
    assert ("Chapter One", "It was a bright cold day in April.") in said
    assert ("Chapter Two", "Call me Ishmael.") in said


def test_opening_cuts_a_long_sentence_at_a_word() -> None:
    from voicekit.synth.progress import opening

    assert opening("Call me Ishmael.") == "Call me Ishmael."
    assert opening("It was a bright cold day in April, and the clocks were striking "
                   "thirteen.", limit=30) == "It was a bright cold day in…"
    assert opening("x" * 60, limit=10) == "x" * 10 + "…"


def _slow_encoder(monkeypatch: pytest.MonkeyPatch, delay: float) -> None:
    """The real encoder, fed slowly: an encode long enough to be watched."""
    from voicekit.synth import writing

    real = writing.write_book

    def slowly(pcm: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for chunk in pcm:
            time.sleep(delay)
            yield chunk

    def write_book(output: Path, fmt: str, timeline: object, pcm: Iterable[np.ndarray],
                   *args: object, **kw: object) -> object:
        return real(output, fmt, timeline, slowly(pcm), *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(writing, "write_book", write_book)


def test_encoding_reports_its_progress_before_done(
        tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    # issue 12: the panel froze while encoding (a quarter of the run on a short book)
    _slow_encoder(monkeypatch, 0.05)
    out = tmp_path / "a.wav"
    synth = Synthesizer(cpu_settings)
    events = list(synth.run(synth.plan(make_book()), out))
    assert events[-1].phase == "done" and events[-1].result is not None
    encoding = [e for e in events if e.encoded_seconds is not None]
    assert len(encoding) >= 2, [e.phase for e in events]
    assert all(e.phase == "assemble" for e in encoding)
    total = events[-1].audio_seconds
    encoded = [e.encoded_seconds or 0.0 for e in encoding]
    assert encoded == sorted(encoded) and encoded[-1] <= total
    assert any(0 < seconds < total for seconds in encoded)  # seen part-way, not only at the end
    assert all(e.audio_seconds == pytest.approx(total) for e in encoding)
    assert encoding[-1].encode_speed and encoding[-1].encode_speed > 0
    assert encoding[-1].eta is not None and encoding[-1].eta > 0
    assert _wav_seconds(out) == pytest.approx(total, abs=0.01)


def test_stopping_while_encoding_stops_the_encoder_and_keeps_the_work(
        tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    _slow_encoder(monkeypatch, 0.2)
    out = tmp_path / "a.wav"
    synth = Synthesizer(cpu_settings)
    events = synth.run(synth.plan(make_book()), out)
    for event in events:
        if event.encoded_seconds:
            break
    began = time.monotonic()
    events.close()  # what Ctrl-C or SIGTERM in the consumer does to the generator
    assert time.monotonic() - began < 1.0
    assert not any(t.name == "voicekit-encode" for t in threading.enumerate())
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial." in p.name]
    assert list(default_job_dir(out).glob("segments/*.npz"))
    assert run(cpu_settings, out).buckets_synthesized == 0  # the rerun only encodes


def test_an_encoder_error_comes_out_of_the_run_unchanged(
        tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from voicekit.synth import writing

    raised: list[OutputError] = []

    def write_book(output: Path, fmt: str, timeline: object, pcm: Iterable[np.ndarray],
                   *args: object, **kw: object) -> None:
        next(iter(pcm))
        error = OutputError(f"cannot write {output}", hint="the disk is full: free some space")
        error.__cause__ = OSError(errno.ENOSPC, "No space left on device")
        raised.append(error)
        raise error

    monkeypatch.setattr(writing, "write_book", write_book)
    out = tmp_path / "a.wav"
    synth = Synthesizer(cpu_settings)
    with pytest.raises(OutputError) as info:
        list(synth.run(synth.plan(make_book()), out))
    assert info.value is raised[0]
    assert info.value.hint == "the disk is full: free some space; finished buckets are kept"
    assert list(default_job_dir(out).glob("segments/*.npz"))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_while_encoding_stops_ffmpeg_at_once(tmp_path: Path, signum: int) -> None:
    # the encoder runs in a worker thread; signals arrive in the main thread, which must
    # stop it: one error line, 143 or 130, no ffmpeg left writing, no partial file
    import psutil

    from tests.reliability.helpers import FAST, cli_command, cli_env, write_text
    from voicekit.formats.ffmpeg import find_ffmpeg

    slow = tmp_path / "slow-ffmpeg"  # real time: an encode long enough to be caught
    slow.write_text(f"#!/bin/sh\nexec '{find_ffmpeg('aac')}' -re \"$@\"\n")
    slow.chmod(0o755)
    book = write_text(tmp_path / "book.md", "\n\n".join(
        f"# Part {i}\n\nThe tide came in over the sand, slow and grey." for i in range(3)))
    out = tmp_path / "book.m4b"
    proc = subprocess.Popen(cli_command("synth", book, "-o", out, *FAST),
                            env=cli_env(VOICEKIT_FFMPEG=str(slow)), stderr=subprocess.PIPE,
                            text=True)
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:  # the plain lines: the encoder's progress is reported
        seen.append(line)
        if ": encoding " in line:
            break
    assert ": encoding " in seen[-1], seen
    encoders = [p for p in psutil.Process(proc.pid).children() if "pipe:0" in p.cmdline()]
    assert encoders, "no ffmpeg reading PCM while encoding"
    began = time.monotonic()
    proc.send_signal(signum)
    rest = proc.communicate(timeout=60)[1]
    assert time.monotonic() - began < 3, "the encode was not stopped promptly"
    assert proc.returncode == (143 if signum == signal.SIGTERM else 130), rest
    errors = [ln for ln in rest.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "finished work is kept" in errors[0], rest
    assert "Traceback" not in rest
    with contextlib.suppress(psutil.NoSuchProcess):  # killed by voicekit, reaped by it
        assert encoders[0].status() == psutil.STATUS_ZOMBIE, "ffmpeg still running"
    assert not out.exists() and not [p for p in tmp_path.iterdir() if ".partial." in p.name]
    assert list(default_job_dir(out).glob("segments/*.npz"))
