"""M4B made from pieces encoded beside the synthesis (synth/finish.py), joined by copy."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from voicekit.formats.ffmpeg import decode_pcm, read_metadata
from voicekit.formats.loudness import measure
from voicekit.settings import SynthSettings
from voicekit.synth import finish, writing
from voicekit.synth.pipeline import RunOptions, Synthesizer, default_job_dir
from voicekit.synth.progress import STAGES, RunResult
from voicekit.text.model import Book, BookMeta, Chapter

pytestmark = pytest.mark.slow

RATE = 22050
FRAME = 1024


def three_chapters() -> Book:
    return Book(
        BookMeta(title="Pieces"),
        [
            Chapter(1, "One", ["The quick brown fox jumps over the lazy dog."]),
            Chapter(2, "Two", ["It was a bright cold day in April.", "Call me Ishmael."]),
            Chapter(3, "Three", ["The tide came in over the sand, slow and grey."]),
        ],
    )


def run(settings: SynthSettings, out: Path, **kw: object) -> RunResult:
    synth = Synthesizer(settings)
    options = RunOptions(**{"fmt": "m4b", **kw})  # type: ignore[arg-type]
    events = list(synth.run(synth.plan(three_chapters()), out, options))
    result = events[-1].result
    assert result is not None
    return result


def decoded(path: Path) -> np.ndarray:
    # the bundled ffmpeg: 5.1 (Debian's) applies an MP4 edit list's start, not its end,
    # so it decodes an AAC file up to a frame long whoever made it
    import imageio_ffmpeg

    return np.concatenate(list(decode_pcm(path, RATE, imageio_ffmpeg.get_ffmpeg_exe())))


def test_pieces_join_into_what_one_encode_gives(
    tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = cpu_settings.replace(chapter_silence=1.0)
    joined = tmp_path / "joined.m4b"
    run(settings, joined, keep_work=True)
    pieces = sorted((default_job_dir(joined) / "pieces").glob("*.m4a"))
    assert len(pieces) == 3  # one per chapter: each chapter pause is a cut
    wav = tmp_path / "book.wav"
    run(settings, wav, fmt="wav", job_dir=default_job_dir(joined), keep_work=True)
    monkeypatch.setattr(writing, "piece_mode", lambda *a, **k: None)
    single = tmp_path / "single.m4b"
    run(settings, single, job_dir=default_job_dir(joined))

    ours, theirs, truth = decoded(joined), decoded(single), decoded(wav)
    # no gap, no priming left at any join; ffmpeg 5.1's AAC encoder makes the last
    # packet a few samples long, in a single encode as in a piece
    assert abs(len(ours) - len(truth)) <= 8 and abs(len(theirs) - len(truth)) <= 8
    # either encode may end a few samples short of the WAV: compare what all three hold
    n = min(len(truth), len(ours), len(theirs))
    ours, theirs, truth = ours[:n], theirs[:n], truth[:n]
    marks = [c.start for c in read_metadata(joined).chapters]
    assert marks == [c.start for c in read_metadata(single).chapters]

    # as close to the WAV as a single encode is (AAC at 64k: tens of dB, not exact)
    def snr(x: np.ndarray) -> float:
        noise = np.sum((x.astype(float) - truth) ** 2)
        return float(10 * np.log10(np.sum(truth.astype(float) ** 2) / noise))

    assert snr(ours) > snr(theirs) - 1.0
    # no click where pieces meet: the cuts lie in the chapter pauses, so the joined
    # audio there is as quiet as the single encode's
    steps = np.abs(np.diff(ours.astype(np.int32)))
    for mark in marks[1:]:
        pause = slice(int(mark * RATE) - RATE // 2, int(mark * RATE) - FRAME)
        assert steps[pause].max() <= max(8, np.abs(np.diff(theirs[pause].astype(np.int32))).max())


def test_a_run_stopped_while_encoding_keeps_its_finished_pieces(
    tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = finish.encode_piece
    calls: list[Path] = []
    encoded: list[Path] = []

    def fail_on_the_last(path: Path, *args: object, **kw: object) -> None:
        calls.append(path)
        if len(calls) == 3:  # the last piece: the others may be encoding beside it
            raise KeyboardInterrupt  # as a Ctrl-C would, half-way through the pieces
        real(path, *args, **kw)  # type: ignore[arg-type]
        encoded.append(path)

    monkeypatch.setattr(finish, "encode_piece", fail_on_the_last)
    out = tmp_path / "a.m4b"
    with pytest.raises(KeyboardInterrupt):
        run(cpu_settings, out)
    assert not out.exists()
    first = list(encoded)
    assert first and all(p.is_file() for p in first)
    calls.clear()
    again = run(cpu_settings, out)
    assert again.buckets_resumed == again.buckets
    assert calls and not set(calls) & set(first)  # finished pieces were not encoded again

    monkeypatch.setattr(finish, "encode_piece", real)
    fresh = tmp_path / "fresh.m4b"
    run(cpu_settings, fresh)
    assert decoded(out).tobytes() == decoded(fresh).tobytes()


def test_the_book_lands_on_the_loudness_target_from_its_pieces(
    tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the gain comes from the book's start; the whole book is checked from the pieces'
    # blocks, and encoded again with a corrected gain when it misses by more than allowed
    monkeypatch.setattr(finish, "ACCEPT_LU", 0.0)  # always correct: the second round runs
    out = tmp_path / "a.m4b"
    synth = Synthesizer(cpu_settings)
    events = list(synth.run(synth.plan(three_chapters()), out, RunOptions(fmt="m4b")))
    result = events[-1].result
    assert result is not None and result.loudness is not None
    warned = [w for e in events for w in e.warnings if "encoded again" in w]
    assert len(warned) == 1, warned  # the run says it made the pieces twice
    reported = result.loudness["integrated_lufs"]
    measured = measure(decode_pcm(out, RATE), RATE).integrated_lufs
    assert abs(reported - -20.0) <= 0.3
    assert abs(measured - reported) <= 0.5  # what the file holds, AAC included


def test_stages_share_out_the_wall_time(tmp_path: Path, cpu_settings: SynthSettings) -> None:
    result = run(cpu_settings, tmp_path / "a.m4b")
    assert set(result.stages) == {*STAGES, "other"}
    assert sum(result.stages.values()) == pytest.approx(result.wall_seconds, rel=0.1)
    assert result.stages["other"] <= 0.1 * result.wall_seconds
    busy = result.stage_busy
    for stage in ("phonemize", "acoustic", "vocoder", "checkpoint", "encode", "join"):
        assert busy[stage] > 0, stage
    assert result.stages["acoustic"] > 0 and result.stages["vocoder"] > 0


@pytest.mark.parametrize("fmt", ["wav", "mp3"])
def test_other_formats_normalise_in_pieces_to_the_same_audio(
    tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # the loudness chain runs on pieces beside the synthesis; one encoder reads them.
    # The cuts lie in silence, so the audio is the whole-book chain's, sample for sample.
    pieced = tmp_path / f"pieced.{fmt}"
    first = run(cpu_settings, pieced, fmt=fmt, keep_work=True)
    job = default_job_dir(pieced)
    kept = "*.pcm" if fmt == "wav" else "*.flac"  # a WAV only copies raw pieces
    assert len(list((job / "pieces").glob(kept))) == 3
    monkeypatch.setattr(writing, "piece_mode", lambda *a, **k: None)
    whole = tmp_path / f"whole.{fmt}"
    second = run(cpu_settings, whole, fmt=fmt, job_dir=job)
    # a short book: the gain's span is all of it. The measured figures are the pieces'
    # blocks joined, less the 400 ms blocks that straddle a cut: with chapters of a few
    # seconds that is a few percent of them (0.04 LU off with one noise draw of this
    # book, 0.16-0.21 LU with another), still well inside the ACCEPT_LU that redoes a book
    assert first.loudness and second.loudness
    assert first.loudness["gain_db"] == second.loudness["gain_db"]
    assert abs(first.loudness["integrated_lufs"] - second.loudness["integrated_lufs"]) <= 0.3
    assert decoded(pieced).tobytes() == decoded(whole).tobytes()


def one_paragraph() -> Book:
    """A book with no paragraph break: a text file without blank lines reads as this."""
    said = [
        "The quick brown fox jumps over the lazy dog.",
        "It was a bright cold day in April.",
        "Call me Ishmael.",
        "The tide came in over the sand, slow and grey.",
        "Nobody on the pier said a word.",
    ]
    return Book(BookMeta(title="Pieces"), [Chapter(1, "One", [" ".join(said)])])


@pytest.mark.parametrize("fmt", ["wav", "m4b"])
def test_a_long_paragraph_is_cut_at_its_sentence_pauses(
    tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # a chapter with no paragraph pause used to be one piece, all of it encoded after the
    # synthesis on one core; a long piece now ends at the next pause that is long enough
    monkeypatch.setattr(finish, "MAX_PIECE_SECONDS", 1.0)
    # a bucket a sentence, so the paragraph has inner pauses between buckets to cut in
    settings = cpu_settings.replace(sentence_silence=0.2, bucket_size=1)
    synth = Synthesizer(settings)
    plan = synth.plan(one_paragraph())
    pieced = tmp_path / f"pieced.{fmt}"
    list(synth.run(plan, pieced, RunOptions(fmt=fmt, keep_work=True)))
    job = default_job_dir(pieced)
    made = list((job / "pieces").glob("*.m4a" if fmt == "m4b" else "*.pcm"))
    assert len(made) >= 3
    monkeypatch.setattr(writing, "piece_mode", lambda *a, **k: None)
    whole = tmp_path / f"whole.{fmt}"
    list(synth.run(plan, whole, RunOptions(fmt=fmt, job_dir=job)))
    ours, theirs = decoded(pieced), decoded(whole)
    if fmt == "wav":  # the cuts lie in silence: the whole-book chain's audio, sample for sample
        assert ours.tobytes() == theirs.tobytes()
        return
    # M4B: a single encode's length, and no click where the pieces meet. Every cut lies
    # within half a frame of a pause's middle, so look a frame either side of each middle.
    assert abs(len(ours) - len(theirs)) <= 8
    n = min(len(ours), len(theirs))
    steps = np.abs(np.diff(ours[:n].astype(np.int32)))
    single = np.abs(np.diff(theirs[:n].astype(np.int32)))
    quiet = np.abs(theirs[:n].astype(np.int32)) <= 8
    edges = np.flatnonzero(np.diff(quiet.astype(np.int8)))
    pauses = [(a, b) for a, b in itertools.pairwise(edges) if quiet[a + 1]]
    middles = [(a + b) // 2 for a, b in pauses if b - a >= 3 * FRAME]
    assert len(middles) >= len(made) - 1
    for middle in middles:
        near = slice(middle - FRAME, middle + FRAME)
        assert steps[near].max() <= max(8, single[near].max())


@pytest.mark.parametrize(
    ("fmt", "maker", "suffix"),
    [("wav", "write_normalised", ".pcm"), ("m4b", "encode_piece", ".m4a")],
)
def test_a_book_without_pauses_is_encoded_while_it_is_synthesised(
    tmp_path: Path,
    cpu_settings: SynthSettings,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    maker: str,
    suffix: str,
) -> None:
    # with every pause at zero there is nowhere to cut: the one piece is streamed through
    # its chain (and, for an M4B, its encoder) as its buckets are placed, not all of it
    # after the synthesis
    monkeypatch.setattr(finish, "PREFIX_SECONDS", 1.0)  # the gain is known early
    monkeypatch.setattr(finish, "ACCEPT_LU", 20.0)  # and kept, so the piece is made once
    settings = cpu_settings.replace(
        sentence_silence=0.0, paragraph_silence=0.0, chapter_silence=0.0, bucket_size=1
    )
    synth = Synthesizer(settings)
    said = " ".join(f"The boat came in with crate number {n} on its deck." for n in range(1, 17))
    plan = synth.plan(Book(BookMeta(title="Pieces"), [Chapter(1, "One", [said])]))
    started: list[int] = []
    real = getattr(finish, maker)

    def counting(path: Path, *args: object, **kw: object) -> None:
        started.append(len(list((path.parent.parent / "segments").glob("*.npz"))))
        real(path, *args, **kw)

    monkeypatch.setattr(finish, maker, counting)
    pieced = tmp_path / f"pieced.{fmt}"
    options = RunOptions(fmt=fmt, job_dir=tmp_path / "job", keep_work=True)
    events = list(synth.run(plan, pieced, options))
    assert len(started) == 1 and started[0] < len(plan.buckets)  # begun mid-synthesis
    # the live panel counts the piece while it streams, not "0/0 pieces"
    shown = [e.pieces for e in events if e.phase == "synth"]
    assert shown.count((0, 1)) >= len(plan.buckets) // 2, shown
    made = list((tmp_path / "job" / "pieces").glob(f"*{suffix}"))
    assert len(made) == 1
    # the same piece made after the synthesis, all at once: the same bytes
    monkeypatch.setattr(finish.Finisher, "_start_open", lambda *a, **k: None)
    after = tmp_path / f"after.{fmt}"
    started.clear()
    options = RunOptions(fmt=fmt, job_dir=tmp_path / "job2", keep_work=True)
    list(synth.run(plan, after, options))
    assert started == [len(plan.buckets)]
    remade = list((tmp_path / "job2" / "pieces").glob(f"*{suffix}"))
    assert [p.name for p in remade] == [p.name for p in made]  # the same key
    assert remade[0].read_bytes() == made[0].read_bytes()
    assert decoded(pieced).tobytes() == decoded(after).tobytes()



def test_a_streamed_m4b_piece_whose_chain_missed_its_length_is_made_again(
    tmp_path: Path, cpu_settings: SynthSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the piece being streamed is not padded to its length, unknown when its ffmpeg
    # starts; its chain's sample count is checked, and a miss makes the piece again, cut
    monkeypatch.setattr(finish, "PREFIX_SECONDS", 1.0)
    monkeypatch.setattr(finish, "ACCEPT_LU", 20.0)
    settings = cpu_settings.replace(
        sentence_silence=0.0, paragraph_silence=0.0, chapter_silence=0.0, bucket_size=1
    )
    synth = Synthesizer(settings)
    said = " ".join(f"The boat came in with crate number {n} on its deck." for n in range(1, 9))
    plan = synth.plan(Book(BookMeta(title="Pieces"), [Chapter(1, "One", [said])]))
    lengths: list[int | None] = []
    real = finish.encode_piece

    def recording(path: Path, *args: object, length: int | None, **kw: object) -> None:
        lengths.append(length)
        real(path, *args, length=length, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(finish, "encode_piece", recording)
    made: list[finish.Finisher] = []
    init = finish.Finisher.__init__

    def keeping(self: finish.Finisher, *args: object, **kw: object) -> None:
        init(self, *args, **kw)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(finish.Finisher, "__init__", keeping)
    count = finish.count_samples
    monkeypatch.setattr(finish, "count_samples", lambda log: count(log) + 1)
    missed = tmp_path / "missed.m4b"
    options = RunOptions(fmt="m4b", job_dir=tmp_path / "job", keep_work=True)
    list(synth.run(plan, missed, options))
    assert len(lengths) == 2 and lengths[0] is None and lengths[1] is not None
    left = sorted(p.suffix for p in (tmp_path / "job" / "pieces").iterdir())
    assert left == [".json", ".m4a"]  # the streamed file is gone, the piece made again kept
    # the live panel's encoded audio counts the book once, not the streamed try as well
    assert made[-1].encoded_samples == made[-1].layout.end
    monkeypatch.setattr(finish, "count_samples", count)
    kept = tmp_path / "kept.m4b"
    lengths.clear()
    list(synth.run(plan, kept, RunOptions(fmt="m4b", job_dir=tmp_path / "job2")))
    assert lengths == [None]
    assert decoded(missed).tobytes() == decoded(kept).tobytes()


def test_the_progress_says_how_far_the_loudness_gain_has_got(
    cpu_settings: SynthSettings, tmp_path: Path
) -> None:
    # before the gain is known no piece can start: the panel sat at "0/0 pieces"
    synth = Synthesizer(cpu_settings)
    out = tmp_path / "book.m4b"
    events = list(synth.run(synth.plan(three_chapters()), out, RunOptions(fmt="m4b")))
    synthesising = [e for e in events if e.phase == "synth" and e.pieces is not None]
    assert synthesising
    made = [e.gain_wait[0] for e in synthesising if e.gain_wait is not None]
    # the book is shorter than the two minutes the gain is measured on: every bucket
    # brings it closer, and no piece is encoded before the gain
    assert len(made) == len(synthesising) and made == sorted(made) and made[-1] > 0
    assert all(e.gain_wait is not None and e.gain_wait[1] == finish.PREFIX_SECONDS
               for e in synthesising[:-1])
    assert all(e.pieces[0] == 0 for e in synthesising[:-1])  # cut, none encoded
    waiting = [e for e in events if e.phase == "assemble" and e.pieces is not None]
    assert waiting and waiting[-1].gain_wait is None  # known by the time the book is joined
    measuring = [e.gain_wait for e in waiting if e.gain_wait is not None]
    assert all(m[0] == m[1] for m in measuring)  # being measured, on the whole short book
