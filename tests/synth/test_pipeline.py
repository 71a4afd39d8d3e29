"""End to end through the engine with the real bundled voice (short texts)."""

from __future__ import annotations

import wave
from pathlib import Path

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
