from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner

from voicekit.cli.main import app
from voicekit.cli.render import LiveView, PlainView, QuietView, hms, speed
from voicekit.synth.progress import Progress
from voicekit.system.monitor import MemoryStats


def event(**kw: object) -> Progress:
    base: dict[str, object] = dict(
        phase="synth", buckets_total=40, buckets_done=10, buckets_resumed=4,
        bucket_id="c002-p0003-0", chapter_title="The Storm",
        sentence="It was a bright cold day in…", audio_seconds=3725.0,
        elapsed=61.0, rtf=0.05, eta=183.0,
        memory=MemoryStats(rss_mb=312.0, peak_rss_mb=350.0, gpu_mb=9000.0,
                           gpu_total_mb=9500.0))
    base.update(kw)
    return Progress(**base)  # type: ignore[arg-type]


def test_formatting_helpers() -> None:
    assert hms(None) == "--:--"
    assert hms(61) == "01:01" and hms(3725) == "1:02:05"
    assert speed(0.05) == "RTF 0.050 (20.0x real time)" and speed(None) == "-"


def test_live_panel_shows_progress_speed_eta_and_memory() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    view = LiveView(console, "book.m4b")
    view.event = event()
    console.print(view._render())
    text = buffer.getvalue()
    # the count sits beside the bar, not run into it (rich's bar ends no line)
    assert re.search(r"━\s+10/40 buckets \(4 resumed\)", text), text
    for expected in ("book.m4b", "The Storm — 'It was a bright cold day in…'",
                     "1:02:05", "01:01", "03:03", "RTF 0.050 (20.0x real time)",
                     "RSS 312 MB (peak 350)", "GPU 9,000/9,500 MB", "above 90%"):
        assert expected in text, expected


def test_live_panel_now_line_names_the_chapter_and_sentence_not_the_bucket_id() -> None:
    # issue 12: the "now" line showed internal ids ("c002-p0000-0")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    view = LiveView(console, "book.m4b")
    view.event = event(bucket_id="c003-p0000-0", chapter_title="Chapter 3",
                       sentence="It was a bright cold day in…")
    console.print(view._render())
    text = buffer.getvalue()
    assert "now  Chapter 3 — 'It was a bright cold day in…'" in text, text
    assert "c003-p0000-0" not in text


def test_live_panel_cuts_a_long_now_line_to_one_line() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=60, color_system=None)
    view = LiveView(console, "book.m4b")
    view.event = event(chapter_title="A Chapter Title Long Enough To Fill The Line Alone",
                       sentence="It was a bright cold day in…")
    console.print(view._render())
    lines = buffer.getvalue().splitlines()
    at = [i for i, ln in enumerate(lines) if " now " in ln]
    assert len(at) == 1 and lines[at[0]].rstrip(" │").endswith("…"), lines
    assert lines[at[0] + 1].split()[1] == "audio"  # nothing wrapped onto a second line


def test_live_panel_follows_the_encoder() -> None:
    # issue 12: the panel froze while encoding; the encode's progress replaces the buckets
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    view = LiveView(console, "book.m4b")
    view.event = event(phase="assemble", buckets_done=40, bucket_id=None, chapter_title=None,
                       sentence=None, message="writing book.m4b", audio_seconds=265.0,
                       encoded_seconds=62.0, encode_speed=35.24, eta=5.8, rtf=None)
    console.print(view._render())
    text = buffer.getvalue()
    for expected in ("encoding 01:02 of 04:25 (35.2x real time)", "now  writing book.m4b",
                     "eta  00:06", "speed  35.2x real time"):
        assert expected in text, (expected, text)
    assert "buckets" not in text


def test_pieces_waiting_for_the_loudness_gain_show_how_far_it_has_got() -> None:
    # the panel sat at "0/0 pieces encoded" for the first two minutes of audio
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=140, color_system=None)
    view = LiveView(console, "book.m4b")
    view.event = event(pieces=(0, 0), gain_wait=(72.0, 120.0))
    console.print(view._render())
    view.event = event(pieces=(0, 1), gain_wait=(120.0, 120.0))
    console.print(view._render())
    view.event = event(pieces=(3, 5), gain_wait=None)
    console.print(view._render())
    text = buffer.getvalue()
    for expected in ("0/0 pieces encoded (loudness: 01:12 of 02:00 made)",
                     "0/1 pieces encoded (loudness: measuring 02:00)",
                     "3/5 pieces encoded"):
        assert expected in text, (expected, text)
    assert text.count("loudness:") == 2
    plain = io.StringIO()
    lines = PlainView(Console(file=plain, width=40), "book", every=0)
    lines.update(event(pieces=(0, 0), gain_wait=(72.0, 120.0)))
    lines.update(event(pieces=(0, 1), gain_wait=(120.0, 120.0)))
    first, second = plain.getvalue().splitlines()
    assert first.endswith("pieces=0/0 loudness=01:12/02:00"), first
    assert second.endswith("pieces=0/1 loudness=02:00/02:00-measuring"), second


def test_plain_view_reports_encoding_rate_limited() -> None:
    buffer = io.StringIO()
    view = PlainView(Console(file=buffer, width=40), "book", every=3600)
    view.update(event(phase="assemble", message="writing book.m4b"))
    encoding = dict(phase="assemble", message="writing book.m4b", audio_seconds=265.0,
                    encoded_seconds=62.0, encode_speed=35.24, eta=5.8, elapsed=70.0)
    view.update(event(**encoding))  # within the interval: skipped
    view.every = 0
    view.update(event(**encoding))
    assert buffer.getvalue().splitlines() == [
        "book: writing book.m4b",
        "book: encoding 01:02 of 04:25 (35.2x real time) elapsed=01:10 eta=00:06",
    ]


def test_plain_view_rate_limits_and_always_reports_the_end() -> None:
    buffer = io.StringIO()
    # narrow, as rich assumes for a pipe: a log line must still be one line
    view = PlainView(Console(file=buffer, width=40), "book", every=3600)
    view.update(event(buckets_done=1))
    view.update(event(buckets_done=2))  # within the interval: skipped
    view.update(event(buckets_done=40))  # the last bucket: always shown
    view.update(event(phase="assemble", message="writing book.wav"))
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("book: 1/40 buckets") and "rtf=0.050" in lines[0]
    assert lines[0].endswith("rss=312MB gpu=9000MB")
    assert lines[1].startswith("book: 40/40") and lines[2] == "book: writing book.wav"


def test_quiet_view_prints_nothing() -> None:
    buffer = io.StringIO()
    view = QuietView(Console(file=buffer), "book")
    view.update(event(warnings=["warning: something"]))
    assert buffer.getvalue() == ""


def test_live_panel_shows_bracketed_names_verbatim() -> None:
    # file names and chapter titles are not markup: "[v2]" must show, "[/v2]" must not raise
    for title, chapter in (("notes [v2].m4b", "Part [1]"), ("a [/v2].m4b", "[/b] end")):
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
        view = LiveView(console, title)
        console.print(view._render())  # before any event
        view.event = event(chapter_title=chapter)
        console.print(view._render())
        text = buffer.getvalue()
        assert text.count(title) == 2, text
        assert chapter in text, text


def test_live_view_prints_bracketed_warnings_verbatim() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    with LiveView(console, "book.m4b") as view:
        view.update(event(warnings=["image [/img] skipped"]))
    assert "image [/img] skipped" in buffer.getvalue()


@pytest.mark.slow
def test_plain_lines_of_a_split_book_are_labelled_with_the_book(tmp_path: Path) -> None:
    # issue 12: --split-chapters labelled its progress "book.m3u8:", a name nobody chose
    story = tmp_path / "story.md"
    story.write_text("# The Harbour Light\n\n## One\n\nThe gulls cried.\n\n## Two\n\nIt rained.\n",
                     encoding="utf-8")
    result = CliRunner().invoke(app, ["synth", str(story), "--split-chapters", "--format", "wav",
                                      "--device", "cpu", "--backend", "ort"])
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    progress = [ln for ln in lines if not ln.startswith("wrote ")]  # the summary names the file
    assert any("buckets" in ln for ln in progress) and any("writing" in ln for ln in progress)
    assert all(ln.startswith("The Harbour Light: ") for ln in progress), lines
