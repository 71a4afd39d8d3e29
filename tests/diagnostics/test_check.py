"""``voicekit check --standard acx``: a file made to ACX's rules passes; each way of
breaking one rule fails that rule, with the measured value and a fix."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from voicekit.cli.main import app
from voicekit.diagnostics import check as acx
from voicekit.formats import ffmpeg


def acx_like(
    path: Path,
    *,
    rate: int = 44100,
    head: float = 0.75,
    tail: float = 2.0,
    speech: float = 4.0,
    speech_rms_db: float = -18.0,
    bitrate: str = "192k",
    channels: int = 1,
) -> Path:
    """Room tone at -70 dB, a burst of speech-like tone, room tone; an MP3 via ffmpeg."""
    rng = np.random.default_rng(7)
    total = round((head + speech + tail) * rate)
    x = rng.standard_normal(total) * 10 ** (-70 / 20)
    start, end = round(head * rate), round((head + speech) * rate)
    t = np.arange(end - start) / rate
    voice = np.sin(2 * np.pi * 220 * t) + 0.4 * np.sin(2 * np.pi * 1100 * t)
    voice *= 10 ** (speech_rms_db / 20) / np.sqrt(np.mean(voice**2))
    x[start:end] += voice
    pcm = np.clip(np.rint(x * 32767), -32767, 32767).astype(np.int16)
    binary = ffmpeg.find_ffmpeg("libmp3lame")
    args = ["-c:a", "libmp3lame", "-b:a", bitrate, "-ac", str(channels), "-f", "mp3", str(path)]
    ffmpeg.encode_pcm(binary, [pcm], rate, args, what=path.name)
    return path


def failed(report: acx.FileReport) -> set[str]:
    return {r.name for r in report.rules if not r.ok}


def test_a_file_made_to_the_rules_passes(tmp_path: Path) -> None:
    report = acx.check(acx_like(tmp_path / "good.mp3"))
    assert report.ok, [r for r in report.files[0].rules if not r.ok]
    measured = {r.name: r.measured for r in report.files[0].rules}
    assert measured["sample rate"] == "44100 Hz"
    assert float(measured["rms"].split()[0]) == pytest.approx(-20.3, abs=1.0)


def test_too_loud_fails_rms_and_peak(tmp_path: Path) -> None:
    report = acx.check(acx_like(tmp_path / "loud.mp3", speech_rms_db=-4)).files[0]
    assert failed(report) == {"rms", "peak"}
    fix = next(r.fix for r in report.rules if r.name == "rms")
    assert fix.startswith("lower the level")


def test_wrong_sample_rate_fails(tmp_path: Path) -> None:
    # 48 kHz: MPEG-1 like 44.1 kHz, so 192 kb/s is possible (at 22.05 kHz MP3 stops at 160)
    report = acx.check(acx_like(tmp_path / "48k.mp3", rate=48000)).files[0]
    assert failed(report) == {"sample rate"}
    rule = next(r for r in report.rules if r.name == "sample rate")
    assert rule.measured == "48000 Hz" and "44.1 kHz" in rule.fix


def test_short_tail_fails(tmp_path: Path) -> None:
    report = acx.check(acx_like(tmp_path / "tail.mp3", tail=0.3)).files[0]
    assert failed(report) == {"tail room tone"}
    rule = next(r for r in report.rules if r.name == "tail room tone")
    assert float(rule.measured.split()[0]) == pytest.approx(0.3, abs=0.1)


def test_low_bitrate_fails_the_format(tmp_path: Path) -> None:
    report = acx.check(acx_like(tmp_path / "64k.mp3", bitrate="64k")).files[0]
    assert failed(report) == {"format"}


def test_over_120_minutes_fails_from_the_header_without_decoding(tmp_path: Path) -> None:
    """A sparse WAV whose header says 121 minutes: the rule reads the header only."""
    path = tmp_path / "long.wav"
    rate, seconds = 8000, 121 * 60
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(rate)
        w.writeframes(b"\x80")
    with path.open("r+b") as fh:  # grow data and RIFF sizes, then the file (sparse)
        fh.seek(4)
        fh.write((36 + rate * seconds).to_bytes(4, "little"))
        fh.seek(40)
        fh.write((rate * seconds).to_bytes(4, "little"))
        fh.truncate(44 + rate * seconds)
    header = acx.read_header(path)
    assert header.seconds == pytest.approx(seconds, abs=1)
    rules = {r.name: r for r in acx.header_rules(header)}
    assert not rules["duration"].ok and rules["duration"].measured == "121.0 min"
    assert "split" in rules["duration"].fix


def test_levels_of_digital_silence_and_of_a_file_with_no_pause() -> None:
    rate = 8000
    silent = acx.measure_levels([np.zeros(rate * 3, np.int16)], rate)
    assert silent.noise_floor_db == -np.inf and silent.head_s == pytest.approx(3.0)
    t = np.arange(rate * 3) / rate
    tone = np.rint(np.sin(2 * np.pi * 300 * t) * 3276).astype(np.int16)  # -20 dB peak
    loud = acx.measure_levels([tone[:5000], tone[5000:]], rate)  # across a chunk boundary
    assert loud.peak_db == pytest.approx(-20, abs=0.1)
    assert loud.rms_db == pytest.approx(-23, abs=0.1)
    assert loud.noise_floor_db == pytest.approx(-23, abs=0.1)  # no room tone anywhere
    assert loud.head_s == 0 and loud.tail_s == 0


runner = CliRunner()


def test_cli_table_json_and_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "book").mkdir()
    good = acx_like(tmp_path / "book" / "01.mp3")
    result = runner.invoke(app, ["check", str(good)])
    assert result.exit_code == 0, result.output
    assert "pass" in result.output and "FAIL" not in result.output

    acx_like(tmp_path / "book" / "02.mp3", channels=2, tail=0.3)
    result = runner.invoke(app, ["check", str(tmp_path / "book"), "--json"])
    assert result.exit_code == 1
    data = json.loads(result.output)
    assert data["ok"] is False and [f["ok"] for f in data["files"]] == [False, False]
    second = {c["rule"]: c for c in data["files"][1]["checks"]}
    assert not second["channels"]["ok"] and not second["tail room tone"]["ok"]
    assert second["tail room tone"]["fix"] and second["rms"]["fix"] == ""

    result = runner.invoke(app, ["check", str(tmp_path / "book"), "--standard", "audible"])
    assert result.exit_code == 2 and "unknown standard" in result.output
    result = runner.invoke(app, ["check", str(tmp_path / "nothing.mp3")])
    assert result.exit_code == 2 and "not found" in result.output


@pytest.mark.slow
def test_our_acx_delivery_passes(tmp_path: Path) -> None:
    """``synth --profile acx``: chapter MP3s that pass the check (chapters of some length:
    in a 10-second file the room tone alone pulls the RMS under -23 dB)."""
    prose = (
        "It was a bright cold day in April, and the clocks were striking thirteen. "
        "Winston Smith, his chin nuzzled into his breast in an effort to escape the vile "
        "wind, slipped quickly through the glass doors of Victory Mansions. "
        "The hallway smelt of boiled cabbage and old rag mats. "
    )
    book = tmp_path / "book.md"
    book.write_text(f"# One\n\n{prose * 2}\n\n# Two\n\n{prose}\n\n{prose}\n", encoding="utf-8")
    out = tmp_path / "acx"
    result = runner.invoke(app, ["synth", str(book), "--profile", "acx", "-o", str(out),
                                 "--device", "cpu", "--backend", "ort", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["loudness"]["target_lufs"] == -20
    files = sorted(out.glob("*.mp3"))
    assert len(files) == 2
    report = acx.check(out)
    assert report.ok, [(f.path.name, r) for f in report.files for r in f.rules if not r.ok]
