from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from tests.synth.manifests import make_manifest
from voicekit.formats import ffmpeg
from voicekit.formats.wav import WavWriter, float_to_pcm16
from voicekit.synth.assemble import Layout, build_timeline, stream_pcm
from voicekit.synth.job import Job
from voicekit.synth.manifest import Manifest, ManifestChapter


def test_wav_is_readable_by_the_standard_library(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    data = (np.sin(np.arange(1000) / 10) * 10000).astype(np.int16)
    with WavWriter(path, 22050) as w:
        w.write(data[:300])
        w.write(data[300:])
    with wave.open(str(path)) as r:
        assert (r.getframerate(), r.getnchannels(), r.getsampwidth()) == (22050, 1, 2)
        assert np.array_equal(np.frombuffer(r.readframes(2000), "<i2"), data)


def test_wav_turns_into_rf64_past_the_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.wav"
    data = (np.arange(2000) % 700 - 350).astype(np.int16)
    with WavWriter(path, 8000, max_riff_size=1000) as w:  # a tiny limit stands in for 4 GiB
        w.write(data)
    head = path.read_bytes()[:20]
    assert head[:4] == b"RF64" and head[12:16] == b"ds64"
    # ffmpeg, which encodes the book from this file, finds the data through the ds64 sizes
    assert ffmpeg.probe(path).sample_rate == 8000
    assert np.array_equal(np.concatenate(list(ffmpeg.decode_pcm(path, 8000))), data)


def test_float_to_pcm16_rounds_and_clips() -> None:
    out = float_to_pcm16(np.array([0.0, 0.5, -1.5, 2.0, 1e-5], np.float32))
    assert list(out) == [0, 16384, -32767, 32767, 0]


def _job(tmp_path: Path, silences: dict[str, float], volume: float = 1.0
         ) -> tuple[Path, Manifest]:
    buckets = [  # chapter 0: two paragraphs; chapter 2: one
        {"id": "a", "hash": "h1", "chapter": 0, "paragraph": 0, "sentences": 2},
        {"id": "b", "hash": "h2", "chapter": 0, "paragraph": 1, "sentences": 1},
        {"id": "c", "hash": "h3", "chapter": 2, "paragraph": 0, "sentences": 1},
    ]
    with Job.open(tmp_path / "job") as job:
        job.write("h1", np.full(30, 100, np.int16), [10, 20])
        job.write("h2", np.full(5, 200, np.int16), [5])
        job.write("h3", np.full(7, 300, np.int16), [7])
    manifest = make_manifest(sample_rate=10, silences=silences, volume=volume,
                             meta={"title": "Book"}, buckets=buckets,
                             chapters={0: ManifestChapter(1, ""), 2: ManifestChapter(3, "Three")})
    return tmp_path / "job", manifest


def test_timeline_and_stream_agree_on_silences_and_marks(tmp_path: Path) -> None:
    folder, manifest = _job(tmp_path, {"sentence": 0.1, "paragraph": 0.4, "chapter": 1.0})
    timeline = build_timeline(folder, manifest)
    pcm = np.concatenate(list(stream_pcm(folder, manifest)))
    # 10 + 1 (sentence gap) + 20 | 4 (paragraph) + 5 | 10 (chapter) + 7
    assert timeline.total == len(pcm) == 57
    assert [(m.index, m.title, m.start, m.end) for m in timeline.chapters] == [
        (1, "Book", 0, 50), (3, "Three", 50, 57)]  # the pause belongs to chapter 1
    assert list(pcm[10:11]) == [0] and list(pcm[31:35]) == [0] * 4
    assert pcm[35] == 200 and pcm[50] == 300


def test_volume_is_applied_when_streaming(tmp_path: Path) -> None:
    folder, manifest = _job(tmp_path, {"sentence": 0, "paragraph": 0, "chapter": 0}, volume=2.0)
    pcm = np.concatenate(list(stream_pcm(folder, manifest)))
    assert set(np.unique(pcm)) == {200, 400, 600}


def test_outputs_get_the_usual_file_mode_not_a_private_one(tmp_path: Path) -> None:
    # Regression: outputs were written through mkstemp and kept its 0600 mode.
    import os

    from voicekit.formats.output import EncodeOptions, write_atomic
    from voicekit.formats.timeline import Timeline

    old = os.umask(0o022)
    try:
        out = tmp_path / "a.wav"
        write_atomic(out, "wav", Timeline(8000, 3, []), [np.zeros(3, np.int16)],
                     EncodeOptions())
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644


def test_any_span_of_the_layout_is_that_slice_of_the_whole_stream(tmp_path: Path) -> None:
    folder, manifest = _job(tmp_path, {"sentence": 0.1, "paragraph": 0.4, "chapter": 1.0}, 1.5)
    whole = np.concatenate(list(stream_pcm(folder, manifest)))
    layout = Layout(folder, manifest)
    layout.extend()
    for first, last in [(0, 57), (0, 1), (9, 12), (30, 51), (45, 57), (56, 57), (12, 12)]:
        got = list(layout.span(first, last, block=3))
        joined = np.concatenate(got) if got else np.zeros(0, np.int16)
        assert np.array_equal(joined, whole[first:last]), (first, last)


def test_the_layout_grows_only_over_finished_buckets_in_book_order(tmp_path: Path) -> None:
    folder, manifest = _job(tmp_path, {"sentence": 0.1, "paragraph": 0.4, "chapter": 1.0})
    layout = Layout(folder, manifest)
    finished = {"h1", "h3"}  # h2 is still being made: h3's place is not known yet
    assert layout.extend(finished.__contains__) == 1 and layout.end == 31
    assert not layout.complete
    finished.add("h2")
    assert layout.extend(finished.__contains__) == 2 and layout.complete
    assert layout.timeline() == build_timeline(folder, manifest)
    assert [(c, p.start) for c, p in layout.chapter_starts()] == [(0, 0), (2, 50)]
