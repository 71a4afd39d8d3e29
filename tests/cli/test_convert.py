"""``voicekit convert``: audio or a job folder in, any format out, chapters/tags/cover carried."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.formats.audio_helpers import decoded_samples, ffmeta, timeline, tone
from tests.synth.manifests import make_manifest
from tests.text.epub_factory import tiny_png
from voicekit.cli.main import app
from voicekit.formats.ffmpeg import extract_cover
from voicekit.formats.output import EncodeOptions, write_atomic
from voicekit.synth.job import Job
from voicekit.synth.manifest import ManifestChapter

runner = CliRunner()


def _invoke(*args: str | Path) -> object:
    return runner.invoke(app, ["convert", *map(str, args)])


def _one_line_error(result: object, code: int, needle: str) -> None:
    assert result.exit_code == code, result.output  # type: ignore[attr-defined]
    lines = [ln for ln in result.output.splitlines() if ln.strip()]  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert "Traceback" not in result.output  # type: ignore[attr-defined]


@pytest.fixture
def wav(tmp_path: Path) -> Path:
    tl = timeline([1.0, 1.0, 1.0])
    path = tmp_path / "book.wav"
    write_atomic(path, "wav", tl, tone(tl), EncodeOptions())
    return path


@pytest.fixture
def cover(tmp_path: Path) -> Path:
    path = tmp_path / "cover.png"
    path.write_bytes(tiny_png())
    return path


def make_job(folder: Path, rate: int = 16000, settings: dict | None = None) -> Path:
    """A finished job folder as the pipeline leaves it (two chapters, four buckets)."""
    job = Job.open(folder)
    buckets = []
    for chapter in range(2):
        for paragraph in range(2):
            pcm = (np.ones(rate // 2) * (chapter + 1) * 1000).astype(np.int16)
            digest = f"{chapter}{paragraph}" * 16
            job.write(digest, pcm, [rate // 4, rate // 4])
            buckets.append(
                {
                    "id": f"c{chapter + 1:03d}-p{paragraph:04d}-0",
                    "hash": digest,
                    "chapter": chapter,
                    "paragraph": paragraph,
                    "sentences": 2,
                }
            )
    (folder / "cover.png").write_bytes(tiny_png())
    job.write_manifest(make_manifest(
        sample_rate=rate,
        settings=settings or {},
        meta={"title": "Job Book", "authors": ["Ann Author"], "date": "1999"},
        cover="cover.png",
        chapters={0: ManifestChapter(3, "Storm"), 1: ManifestChapter(4, "")},
        buckets=buckets,
    ))  # fmt: skip
    job.close()
    return folder


# per chapter: (0.25 + 0.1 + 0.25) + 0.2 + (0.25 + 0.1 + 0.25); 0.5 s between chapters
CHAPTER_SECONDS = 1.4
JOB_SECONDS = CHAPTER_SECONDS + 0.5 + CHAPTER_SECONDS


def test_wav_to_m4b_with_title_authors_cover_and_chapters(
    tmp_path: Path, wav: Path, cover: Path
) -> None:
    from mutagen.mp4 import MP4

    chapters = tmp_path / "ch.txt"
    chapters.write_text("0:00 Opening\n0:01.5 Middle\n0:02.250 End\n")
    out = tmp_path / "book.m4b"
    result = _invoke(
        wav,
        "-o",
        out,
        "--title",
        "Converted",
        "--author",
        "A One",
        "--author",
        "B Two",
        "--cover",
        cover,
        "--chapters-file",
        chapters,
    )
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "3 chapters" in result.output
    meta = ffmeta(out)
    assert [(c.title, round(c.start, 3)) for c in meta.chapters] == [
        ("Opening", 0.0), ("Middle", 1.5), ("End", 2.25)]  # fmt: skip
    tags = MP4(out).tags
    assert tags["\xa9nam"] == ["Converted"] and tags["\xa9ART"] == ["A One, B Two"]
    assert bytes(tags["covr"][0]) == tiny_png()
    assert decoded_samples(out, 16000) == pytest.approx(48000, rel=0.01)


def test_m4b_to_mp3_carries_chapters_tags_and_cover(tmp_path: Path, cover: Path) -> None:
    from mutagen.id3 import ID3

    tl = timeline([1.0, 2.0])
    source = tmp_path / "src.m4b"
    meta = {"title": "Carried", "authors": ["Ann Author"], "date": "2005"}
    write_atomic(source, "m4b", tl, tone(tl), EncodeOptions(meta=meta, cover=cover))
    out = tmp_path / "out.mp3"
    result = _invoke(source, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "mp3" and summary["chapters"] == 2
    id3 = ID3(out)
    assert id3["TIT2"].text == ["Carried"] and id3["TPE1"].text == ["Ann Author"]
    assert str(id3["TDRC"].text[0]) == "2005"
    assert id3.getall("APIC")[0].data == tiny_png()
    starts = sorted(c.start_time for c in id3.getall("CHAP"))
    assert starts == [0, 1000]


def test_job_folder_to_m4b_without_resynthesis(tmp_path: Path) -> None:
    folder = make_job(tmp_path / "book.m4b.voicekit-job")
    result = _invoke(folder, "-f", "m4b")
    assert result.exit_code == 0, result.output
    out = tmp_path / "book.m4b"  # named after the job folder
    meta = ffmeta(out)
    assert [c.title for c in meta.chapters] == ["Storm", "Chapter 4"]
    assert meta.chapters[1].start == pytest.approx(CHAPTER_SECONDS + 0.5, abs=0.001)
    assert meta.tags["title"] == "Job Book" and meta.tags["artist"] == "Ann Author"
    assert extract_cover(out) == tiny_png()
    assert decoded_samples(out, 16000) == pytest.approx(JOB_SECONDS * 16000, rel=0.01)


def test_job_folder_in_use_is_refused(tmp_path: Path) -> None:
    folder = make_job(tmp_path / "job")
    holder = Job.open(folder)
    try:
        result = _invoke(folder, "-o", tmp_path / "x.mp3")
    finally:
        holder.close()
    _one_line_error(result, 7, "in use by another voicekit run")


def test_split_chapters_from_a_job(tmp_path: Path) -> None:
    from mutagen.flac import FLAC

    folder = make_job(tmp_path / "story.flac.voicekit-job")
    result = _invoke(folder, "--split-chapters", "-f", "flac", "-o", tmp_path / "parts")
    assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "parts").iterdir())
    assert files == ["01 - Storm.flac", "02 - Chapter 4.flac", "story.m3u8"]
    second = FLAC(tmp_path / "parts" / "02 - Chapter 4.flac")
    assert second["TRACKNUMBER"] == ["2"] and second["TRACKTOTAL"] == ["2"]
    assert second["ALBUM"] == ["Job Book"]


def test_split_needs_chapters(tmp_path: Path, wav: Path) -> None:
    _one_line_error(_invoke(wav, "--split-chapters", "-f", "mp3"), 2, "no chapters to split at")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--cover", "missing.jpg"], 2, "cover image not found"),
        (["--chapters-file", "missing.txt"], 2, "chapters file not found"),
        (["--bitrate", "loud"], 2, "bitrate 'loud'"),
        (["-f", "aiff"], 2, "unknown format"),
    ],
)
def test_bad_options(tmp_path: Path, wav: Path, args: list[str], code: int, needle: str) -> None:
    _one_line_error(_invoke(wav, "-o", tmp_path / "o.m4b", *args), code, needle)
    assert not (tmp_path / "o.m4b").exists()


def test_chapter_past_the_end(tmp_path: Path, wav: Path) -> None:
    chapters = tmp_path / "ch.txt"
    chapters.write_text("0:00 A\n1:00:00 B\n")
    result = _invoke(wav, "-o", tmp_path / "o.mp3", "--chapters-file", chapters)
    _one_line_error(result, 2, "after the end of the audio")


def test_existing_output_needs_force(tmp_path: Path, wav: Path) -> None:
    out = tmp_path / "o.opus"
    out.write_bytes(b"old")
    _one_line_error(_invoke(wav, "-o", out), 3, "exists; use --force")
    assert out.read_bytes() == b"old"
    assert _invoke(wav, "-o", out, "--force").exit_code == 0
    assert out.read_bytes()[:4] == b"OggS"


def test_default_output_and_refusing_to_overwrite_the_input(tmp_path: Path, wav: Path) -> None:
    assert _invoke(wav, "-f", "flac", "-q").exit_code == 0
    assert (tmp_path / "book.flac").read_bytes()[:4] == b"fLaC"
    _one_line_error(_invoke(wav, "-f", "wav", "--force"), 3, "would replace the input")


def test_output_without_extension_defaults_to_m4b(tmp_path: Path, wav: Path) -> None:
    out = tmp_path / "audiobook"
    result = _invoke(wav, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["format"] == "m4b"
    assert out.read_bytes()[4:8] == b"ftyp"


@pytest.mark.parametrize("fmt", ["opus", "flac", "mp3"])
def test_tags_and_chapters_carry_over_from(tmp_path: Path, fmt: str) -> None:
    from mutagen.flac import FLAC

    tl = timeline([1.0, 1.5])
    source = tmp_path / f"src.{fmt}"
    meta = {"title": "Carried", "authors": ["Ann Author"], "date": "2005"}
    write_atomic(source, fmt, tl, tone(tl), EncodeOptions(meta=meta))
    out = tmp_path / "out.flac"
    assert _invoke(source, "-o", out, "-q").exit_code == 0
    tags = FLAC(out)
    assert tags["TITLE"] == ["Carried"] and tags["ARTIST"] == ["Ann Author"]
    assert tags["DATE"] == ["2005"]
    assert [round(c.start) for c in ffmeta(out).chapters] == [0, 1]


def test_bad_sources(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not audio")
    _one_line_error(_invoke(text, "-o", tmp_path / "x.m4b"), 2, "not audio")
    _one_line_error(_invoke(tmp_path / "nope.wav"), 2, "input not found")
    (tmp_path / "folder").mkdir()
    _one_line_error(_invoke(tmp_path / "folder"), 2, "not a voicekit job folder")


def _pcm(path: Path) -> np.ndarray:
    from voicekit.formats.ffmpeg import decode_pcm, probe

    return np.concatenate(list(decode_pcm(path, probe(path).sample_rate)))


def _audio_packets(path: Path) -> bytes:
    """The audio stream's packets as stored, without any container or tags."""
    import subprocess

    from voicekit.formats.ffmpeg import find_ffmpeg

    return subprocess.run(
        [find_ffmpeg(), "-v", "error", "-i", str(path), "-map", "0:a:0", "-c", "copy",
         "-f", "data", "-"], capture_output=True, check=True,
    ).stdout  # fmt: skip


@pytest.mark.parametrize("fmt", ["m4b", "mp3", "flac", "opus"])
def test_same_format_retags_without_re_encoding(tmp_path: Path, cover: Path, fmt: str) -> None:
    """M4B -> M4B with a new title, cover and chapters: the audio is copied, not encoded again."""
    tl = timeline([1.0, 2.0])
    source = tmp_path / f"src.{fmt}"
    meta = {"title": "Old", "authors": ["Ann Author"], "date": "2005"}
    write_atomic(source, fmt, tl, tone(tl), EncodeOptions(meta=meta))
    chapters = tmp_path / "chapters.txt"
    chapters.write_text("00:00 Opening\n00:00.500 Middle\n00:02 Last\n", encoding="utf-8")
    out = tmp_path / f"out.{fmt}"
    result = _invoke(source, "-o", out, "--title", "New", "--cover", cover,
                     "--chapters-file", chapters, "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stream_copy"] is True
    assert _audio_packets(out) == _audio_packets(source)  # the very same packets
    assert np.array_equal(_pcm(out), _pcm(source))  # so the same samples, exactly
    found = ffmeta(out)
    assert found.tags.get("title") == "New" or found.tags.get("TITLE") == "New"
    if fmt == "mp3":  # ffmpeg shifts MP3 chapters by the encoder delay: read the frames
        from mutagen.id3 import ID3

        assert sorted(c.start_time for c in ID3(out).getall("CHAP")) == [0, 500, 2000]
    else:
        assert [round(c.start, 1) for c in found.chapters] == [0.0, 0.5, 2.0]
    assert extract_cover(out) == tiny_png()


def test_a_new_bitrate_or_format_still_encodes(tmp_path: Path) -> None:
    tl = timeline([1.0, 2.0])
    source = tmp_path / "src.m4b"
    write_atomic(source, "m4b", tl, tone(tl), EncodeOptions(meta={"title": "T"}))
    result = _invoke(source, "-o", tmp_path / "out.m4b", "--bitrate", "96k", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["stream_copy"] is False
    result = _invoke(source, "-o", tmp_path / "out.mp3", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout)["stream_copy"] is False


@pytest.mark.parametrize("fmt", ["m4b", "mp3", "flac"])
def test_a_retag_keeps_narrator_and_series(tmp_path: Path, fmt: str) -> None:
    tl = timeline([1.0])
    source = tmp_path / f"src.{fmt}"
    meta = {"title": "Old", "authors": ["Ann"], "narrators": ["Nia"], "series": "Saga",
            "series_index": "2"}  # fmt: skip
    write_atomic(source, fmt, tl, tone(tl), EncodeOptions(meta=meta))
    out = tmp_path / f"out.{fmt}"
    assert _invoke(source, "-o", out, "--title", "New", "-q").exit_code == 0
    tags = ffmeta(out).tags
    assert tags["title"] == "New" and tags["composer"] == "Nia"
    assert tags["series"] == "Saga" and tags["series-part"] == "2"


def _lufs(path: Path) -> float:
    from voicekit.formats.ffmpeg import decode_pcm, probe
    from voicekit.formats.loudness import measure

    rate = probe(path).sample_rate
    return measure(decode_pcm(path, rate), rate).integrated_lufs


def test_convert_loudness_normalises_a_file(tmp_path: Path, wav: Path) -> None:
    before = _lufs(wav)
    out = tmp_path / "loud.flac"
    result = _invoke(wav, "-o", out, "--loudness", "-26", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["loudness"]["target_lufs"] == -26
    assert abs(before + 26) > 5 and abs(_lufs(out) + 26) <= 1.0
    plain = tmp_path / "plain.flac"
    assert _invoke(wav, "-o", plain, "-q").exit_code == 0  # a file: its level as it is
    assert _lufs(plain) == pytest.approx(before, abs=0.1)
    _one_line_error(_invoke(wav, "-o", tmp_path / "x.flac", "--loudness", "-5"), 2, "loudness")


def test_a_job_folder_is_brought_to_its_own_loudness(tmp_path: Path) -> None:
    """``synth --keep-work`` then ``convert``: the same level synth would have written."""
    folder = make_job(tmp_path / "book.voicekit-job",
                      settings={"loudness": -16.0, "true_peak": -3.0})
    out = tmp_path / "job.flac"
    result = _invoke(folder, "-o", out, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["loudness"]["target_lufs"] == -16
    off = tmp_path / "off.flac"
    result = _invoke(folder, "-o", off, "--json", "--loudness", "0")
    assert result.exit_code == 0 and json.loads(result.stdout)["loudness"] is None
    # (this job's audio is flat steps, nearly all DC, which K-weighting ignores: so only
    # "brought up" is asserted here; speech reaching the target is test_loudness's)
    assert _lufs(out) > _lufs(off) + 5
