from __future__ import annotations

import io
import re

from rich.console import Console

from voicekit.cli.render import LiveView, PlainView, QuietView, hms, speed
from voicekit.synth.progress import Progress
from voicekit.system.monitor import MemoryStats


def event(**kw: object) -> Progress:
    base: dict[str, object] = dict(
        phase="synth", buckets_total=40, buckets_done=10, buckets_resumed=4,
        bucket_id="c002-p0003-0", chapter_title="The Storm", audio_seconds=3725.0,
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
    for expected in ("book.m4b", "c002-p0003-0", "The Storm",
                     "1:02:05", "01:01", "03:03", "RTF 0.050 (20.0x real time)",
                     "RSS 312 MB (peak 350)", "GPU 9,000/9,500 MB", "above 90%"):
        assert expected in text, expected


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
