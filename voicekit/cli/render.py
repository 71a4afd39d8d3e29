"""Rich views of engine progress: a live panel on a terminal, plain lines elsewhere."""

from __future__ import annotations

import sys
import time
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from voicekit.synth.progress import Progress
from voicekit.system.monitor import WARN_FRACTION


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def speed(rtf: float | None) -> str:
    if not rtf:
        return "-"
    return f"RTF {rtf:.3f} ({1 / rtf:,.1f}x real time)"


def encoding_line(event: Progress) -> str:
    """How far the encoder has got: "encoding 01:02 of 07:51 (35.2x real time)"."""
    line = f"encoding {hms(event.encoded_seconds)} of {hms(event.audio_seconds)}"
    if event.encode_speed:
        line += f" ({event.encode_speed:,.1f}x real time)"
    return line + pieces_note(event)


def pieces_note(event: Progress) -> str:
    """", 3/12 pieces encoded" when the output is encoded in pieces beside the synthesis,
    and while they wait for the loudness gain, how far that has got."""
    if event.pieces is None:
        return ""
    done, known = event.pieces
    return f", {done}/{known} pieces encoded" + gain_note(event)


def gain_note(event: Progress) -> str:
    """" (loudness: 01:12 of 02:00 made)" while the book's start that sets the gain is
    synthesised, " (loudness: measuring 02:00)" while it is measured: until then no piece
    can be encoded, and the count alone would sit at 0/0."""
    if event.gain_wait is None:
        return ""
    made, span = event.gain_wait
    if made < span:
        return f" (loudness: {hms(made)} of {hms(span)} made)"
    return f" (loudness: measuring {hms(span)})"


def now_line(event: Progress) -> str:
    """What the voice is on: "Chapter 3 — 'It was a bright cold day in…'"."""
    if event.sentence is None:
        return event.chapter_title or event.bucket_id or event.message or event.phase
    said = f"'{event.sentence}'"
    return f"{event.chapter_title} — {said}" if event.chapter_title else said


def memory_line(event: Progress) -> str:
    mem = event.memory
    if mem is None:
        return "-"
    text = f"RSS {mem.rss_mb:,.0f} MB (peak {mem.peak_rss_mb:,.0f})"
    if mem.gpu_mb is not None:
        text += f" | GPU {mem.gpu_mb:,.0f}"
        if mem.gpu_total_mb:
            text += f"/{mem.gpu_total_mb:,.0f} MB"
            if (mem.gpu_fraction or 0) > WARN_FRACTION:
                text += f" [bold red]above {WARN_FRACTION:.0%}[/]"
    return text


class View(Protocol):
    def __enter__(self) -> View: ...
    def __exit__(self, *exc: object) -> None: ...
    def update(self, event: Progress) -> None: ...
    def note(self, message: str) -> None: ...


class LiveView:
    """The live panel: progress, bucket, audio so far, time, ETA, speed, memory."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.event: Progress | None = None
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False,
                          get_renderable=self._render)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.__exit__(None, None, None)

    def note(self, message: str) -> None:
        self._live.console.print(message, markup=False)

    def update(self, event: Progress) -> None:
        self.event = event
        for warning in event.warnings:
            self._live.console.print(Text(warning, style="yellow"))
        self._live.refresh()

    def _render(self) -> Panel:
        e = self.event
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold cyan", justify="right")
        grid.add_column()
        if e is None:
            grid.add_row("status", "starting")
            return self._panel(grid)
        encoding = e.encoded_seconds is not None
        if encoding:  # the buckets are all done: the bar follows the encoder
            bar = ProgressBar(total=max(e.audio_seconds, 1e-9), completed=e.encoded_seconds or 0,
                              width=40)
            done = encoding_line(e)
        else:
            bar = ProgressBar(total=max(e.buckets_total, 1), completed=e.buckets_done, width=40)
            done = f"{e.buckets_done}/{e.buckets_total} buckets"
            if e.buckets_resumed:
                done += f" ({e.buckets_resumed} resumed)"
            done += pieces_note(e)
        # ProgressBar ends no line, so it goes beside its text rather than above it.
        line = Table.grid(padding=(0, 1))
        line.add_row(bar, done)
        grid.add_row("progress", line)
        # chapter titles, sentences and paths are not markup; one line, cut to fit
        grid.add_row("now", Text(now_line(e), no_wrap=True, overflow="ellipsis"))
        grid.add_row("audio", hms(e.audio_seconds))
        grid.add_row("elapsed", hms(e.elapsed))
        grid.add_row("eta", hms(e.eta))
        if encoding:
            grid.add_row("speed", f"{e.encode_speed:,.1f}x real time" if e.encode_speed else "-")
        else:
            grid.add_row("speed", speed(e.rtf))
        grid.add_row("memory", memory_line(e))
        return self._panel(grid)

    def _panel(self, grid: Table) -> Panel:
        # a str title is parsed as markup whatever the console says; the title is a file name
        return Panel(grid, title=Text(self.title), border_style="cyan")


class PlainView:
    """One line per event on stderr, at most every ``every`` seconds while synthesizing."""

    def __init__(self, console: Console, title: str, every: float = 2.0) -> None:
        self.console = console
        self.title = title
        self.every = every
        self._last: float | None = None  # the first event always prints

    def __enter__(self) -> PlainView:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def note(self, message: str) -> None:
        # log lines are for grep and log files: never wrapped at the width rich guesses
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def update(self, event: Progress) -> None:
        for warning in event.warnings:
            self.note(warning)
        now = time.monotonic()
        last_bucket = event.buckets_done >= event.buckets_total
        recent = self._last is not None and now - self._last < self.every
        encoding = event.encoded_seconds is not None
        if recent and (encoding or (event.phase == "synth" and not last_bucket)):
            return
        self._last = now
        if encoding:
            eta = f" eta={hms(event.eta)}" if event.eta is not None else ""
            self.note(f"{self.title}: {encoding_line(event)} elapsed={hms(event.elapsed)}{eta}")
        elif event.phase == "synth":
            mem = event.memory
            rss = f" rss={mem.rss_mb:.0f}MB" if mem else ""
            gpu = f" gpu={mem.gpu_mb:.0f}MB" if mem and mem.gpu_mb is not None else ""
            rtf = f" rtf={event.rtf:.3f}" if event.rtf else ""
            pieces = f" pieces={event.pieces[0]}/{event.pieces[1]}" if event.pieces else ""
            if event.gain_wait is not None:
                made, span = event.gain_wait
                state = "" if made < span else "-measuring"
                pieces += f" loudness={hms(made)}/{hms(span)}{state}"
            self.note(f"{self.title}: {event.buckets_done}/{event.buckets_total} buckets "
                      f"audio={hms(event.audio_seconds)} elapsed={hms(event.elapsed)} "
                      f"eta={hms(event.eta)}{rtf}{rss}{gpu}{pieces}")
        elif event.message:
            self.note(f"{self.title}: {event.message}")


class QuietView(PlainView):
    """Nothing but errors (which the error boundary prints)."""

    def note(self, message: str) -> None:
        pass


def make_view(title: str, *, quiet: bool, json_mode: bool) -> Any:
    console = Console(file=sys.stderr, highlight=False)
    if quiet:
        return QuietView(console, title)
    if sys.stdout.isatty() and console.is_terminal and not json_mode:
        return LiveView(console, title)
    return PlainView(console, title)
