"""Bad inputs that used to crash ("unexpected ...", exit 1) or pass silently: each is now a
one-line error with the right exit code, or is read as the user meant (issue 9, items 8 and 11).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from voicekit.cli.main import app
from voicekit.errors import InputError
from voicekit.text.normalize import normalize_text
from voicekit.text.sources import load_source

DRY = ["--dry-run", "--device", "cpu", "--backend", "ort"]


def invoke(*args: str | Path) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(result: object, code: int, needle: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == code, output  # type: ignore[attr-defined]
    lines = [ln for ln in output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert "unexpected" not in output and "Traceback" not in output


# --------------------------------------------------------------------------- text files
def test_nul_byte_after_the_first_4_kb_is_binary(tmp_path: Path) -> None:
    path = tmp_path / "late-nul.txt"
    path.write_bytes(b" " * 5000 + b"Hi\x00 there.\n")
    one_line_error(invoke("synth", path, *DRY), 2, "a NUL byte at offset 5002")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_text_is_read(tmp_path: Path, encoding: str) -> None:
    text = "Chapter 1\n\nHello from a wide encoding. Caf\u00e9 \u2014 na\u00efve.\n"
    path = tmp_path / "wide.txt"
    path.write_bytes(text.encode(encoding))
    book = load_source(path)
    assert book.chapters[0].title == "Chapter 1"
    assert book.chapters[0].paragraphs == [
        "Hello from a wide encoding. Caf\u00e9 \u2014 na\u00efve."
    ]


def test_broken_utf16_says_utf16(tmp_path: Path) -> None:
    path = tmp_path / "odd.txt"
    path.write_bytes("Hello.".encode("utf-16") + b"\x00")  # an odd byte count
    with pytest.raises(InputError, match="looks like UTF-16 text but does not decode"):
        load_source(path)


def test_int16_samples_are_not_taken_for_utf16(tmp_path: Path) -> None:
    path = tmp_path / "pcm.txt"
    path.write_bytes(bytes([5, 0, 7, 0, 1, 0, 3, 0] * 64))  # small numbers: control characters
    with pytest.raises(InputError, match="looks binary"):
        load_source(path)


@pytest.mark.parametrize(
    "text",
    [
        "\u200b\u200b\u200c\u200d\u2060\ufeff\n",  # zero-width only
        "\u200b\n\n\u00a0\u3000\n",
        "... --- ***\n\n!!!\n",  # punctuation that says nothing
    ],
)
def test_text_that_says_nothing_is_empty(tmp_path: Path, text: str) -> None:
    path = tmp_path / "nothing.txt"
    path.write_text(text, encoding="utf-8")
    one_line_error(invoke("synth", path, *DRY), 2, "has no text to read")


def test_markdown_with_only_a_heading_and_zero_width_text_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "nothing.md"
    path.write_text("# Title\n\n\u200b\u200b\n", encoding="utf-8")
    with pytest.raises(InputError, match="has no text to read"):
        load_source(path)


def test_stdin_of_zero_width_characters_is_empty() -> None:
    result = CliRunner().invoke(app, ["synth", "-", "-o", "x.wav", *DRY],
                                input="\u200b\u200b".encode())
    one_line_error(result, 2, "standard input has no text to read")


# --------------------------------------------------------------------------- numbers
def test_a_5000_digit_number_is_read_digit_by_digit_in_dry_run(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.write_text("The number is " + "7" * 5000 + ".\n", encoding="utf-8")
    result = invoke("synth", path, *DRY)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]


@pytest.mark.parametrize("lang", ["en", "de", "fr"])
def test_long_numbers_are_read_digit_by_digit(lang: str) -> None:
    digits = "1234567890" * 500
    for text in (digits, f"{digits}th", f"{digits}%", f"-{digits}.5", f"${digits}"):
        spoken = normalize_text(text, lang)
        assert not any(ch.isdigit() for ch in spoken), (text[:20], spoken[:80])
    spoken = normalize_text(digits, "en")
    assert spoken.split()[:4] == ["one", "two", "three", "four"]
    assert len(spoken.split()) == len(digits)


def test_ordinary_numbers_are_still_cardinals() -> None:
    spoken = normalize_text("It cost 1,250 coins, 36 digits: " + "9" * 36)
    assert spoken.startswith("It cost one thousand, two hundred and fifty coins, thirty-six")
    assert "nine hundred and ninety-nine decillion" in spoken


# --------------------------------------------------------------------------- chapters files
@pytest.fixture
def wav(tmp_path: Path) -> Path:
    from tests.formats.audio_helpers import timeline, tone
    from voicekit.formats.output import EncodeOptions, write_atomic

    tl = timeline([1.0, 1.0, 1.0])
    path = tmp_path / "book.wav"
    write_atomic(path, "wav", tl, tone(tl), EncodeOptions())
    return path


@pytest.mark.parametrize(
    ("start", "needle"),
    [
        ("NaN", "not a finite time"),
        ("Infinity", "not a finite time"),
        ("-Infinity", "not a finite time"),
        ("1e308", "after the end of the audio"),
        ('"1e308"', "after the end of the audio"),
    ],
)
def test_chapters_json_with_non_finite_or_huge_times(
    tmp_path: Path, wav: Path, start: str, needle: str
) -> None:
    chapters = tmp_path / "ch.json"
    chapters.write_text(f'[{{"start": 0, "title": "a"}}, {{"start": {start}, "title": "b"}}]')
    result = invoke("convert", wav, "-o", tmp_path / "out.mp3", "--chapters-file", chapters)
    one_line_error(result, 2, needle)
    assert not (tmp_path / "out.mp3").exists()


@pytest.mark.parametrize("fmt", ["mp3", "m4b", "flac"])
def test_negative_ffmetadata_start(tmp_path: Path, wav: Path, fmt: str) -> None:
    chapters = tmp_path / "ch.txt"
    chapters.write_text(
        ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=-5000\nEND=1000\ntitle=a\n"
        "[CHAPTER]\nTIMEBASE=1/1000\nSTART=1000\nEND=2000\ntitle=b\n"
    )
    result = invoke("convert", wav, "-o", tmp_path / f"out.{fmt}", "--chapters-file", chapters)
    one_line_error(result, 2, "starts at -00:00:05.000, before the beginning of the audio")


def test_ffmetadata_start_too_large_for_a_float(tmp_path: Path, wav: Path) -> None:
    chapters = tmp_path / "ch.txt"
    chapters.write_text(f";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART={'9' * 400}\n")
    result = invoke("convert", wav, "-o", tmp_path / "out.mp3", "--chapters-file", chapters)
    one_line_error(result, 2, "chapter 1 has no valid TIMEBASE/START")


# --------------------------------------------------------------------------- voices
def _voice_copy(tmp_path: Path, change: dict[str, object]) -> Path:
    from voicekit.backends.voices import bundled_voice_path

    model = bundled_voice_path()
    folder = tmp_path / "voice"
    folder.mkdir()
    onnx = folder / "v.onnx"
    onnx.symlink_to(model)
    config = json.loads(model.with_name(model.name + ".json").read_text(encoding="utf-8"))
    for dotted, value in change.items():
        *parents, key = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[key] = value
    (folder / "v.onnx.json").write_text(json.dumps(config), encoding="utf-8")
    return onnx


@pytest.mark.parametrize("rate", [0, -5, "abc", "22050", 22050.5, True, None, 10**9])
def test_voice_with_a_bad_sample_rate(tmp_path: Path, rate: object) -> None:
    voice = _voice_copy(tmp_path, {"audio.sample_rate": rate})
    text = tmp_path / "hi.txt"
    text.write_text("Hello there.\n")
    one_line_error(invoke("synth", text, "--voice", voice, *DRY), 4, "audio.sample_rate")


def test_voice_with_an_unknown_espeak_voice(tmp_path: Path) -> None:
    voice = _voice_copy(tmp_path, {"espeak.voice": "xx-nonexistent"})
    text = tmp_path / "hi.txt"
    text.write_text("Hello there.\n")
    result = invoke("synth", text, "--voice", voice, "-o", tmp_path / "hi.wav", "--quiet",
                    "--device", "cpu", "--backend", "ort")
    one_line_error(result, 4, "'xx-nonexistent'")
    assert not (tmp_path / "hi.wav").exists()


# --------------------------------------------------------------------------- convert
def test_convert_of_a_cut_short_m4b_fails_instead_of_padding(tmp_path: Path) -> None:
    from tests.formats.audio_helpers import timeline, tone
    from voicekit.formats.output import EncodeOptions, write_atomic

    tl = timeline([10.0, 10.0])
    whole = tmp_path / "whole.m4b"
    write_atomic(whole, "m4b", tl, tone(tl), EncodeOptions())  # index at the front
    data = whole.read_bytes()
    cut = tmp_path / "cut.m4b"
    cut.write_bytes(data[: len(data) // 2])  # an interrupted download
    out = tmp_path / "out.wav"
    one_line_error(invoke("convert", cut, "-o", out), 2, "before the 00:00:20.000 its header")
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
    # the whole file still converts, to its full length
    result = invoke("convert", whole, "-o", out)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]


def test_convert_of_an_mp3_whose_header_guesses_its_length(tmp_path: Path) -> None:
    import subprocess

    from voicekit.formats.ffmpeg import find_ffmpeg

    mp3 = tmp_path / "vbr.mp3"
    # VBR without a Xing header: ffmpeg estimates the length from the first frames' bitrate
    subprocess.run(
        [find_ffmpeg("libmp3lame"), "-hide_banner", "-loglevel", "error", "-f", "lavfi",
         "-i", "sine=f=300:d=10:r=22050", "-f", "lavfi", "-i", "anoisesrc=d=20:r=22050:a=0.3",
         "-filter_complex", "[0][1]concat=n=2:v=0:a=1", "-c:a", "libmp3lame", "-q:a", "6",
         "-write_xing", "0", str(mp3)],
        check=True,
    )
    one_line_error(invoke("convert", mp3, "-o", tmp_path / "out.wav"), 2, "its header declares")
