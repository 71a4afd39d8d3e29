"""What the CLI shows of a cluster batch: the plain line and the live panel (no Ray needed)."""

from __future__ import annotations

import pytest
import typer
from rich.console import Console

from voicekit.cli.cluster import _line, _panel, _summary
from voicekit.cli.synth import ViewMode
from voicekit.cluster.runner import ClusterState


def _state() -> ClusterState:
    state = ClusterState(books=4, retries=1)
    state.rows = [{"input": "a.md", "status": "done"}, {"input": "b.md", "status": "failed"}]
    state.workers = [
        {"node": "abcdef0123", "host": "gpu-1", "pid": 11, "device": "cuda:0",
         "backend": "torch", "books": 1, "buckets": 30, "audio_seconds": 600.0,
         "now": {"book": "c.epub", "phase": "synth", "buckets_done": 5, "buckets_total": 9,
                 "audio_seconds": 120.0, "peak_gpu_mb": 2048.0}},
        {"node": "99999999aa", "host": "cpu-1", "pid": 12, "device": "cpu", "backend": "ort",
         "books": 0, "buckets": 4, "audio_seconds": 0.0, "now": {}},
    ]  # fmt: skip
    return state


def test_plain_line_aggregates_the_cluster() -> None:
    line = _line(_state())
    assert line.startswith("cluster: 1/4 books done, 1 in flight, 1 failed; 34 buckets made;")
    assert "audio 12:00" in line and "2 workers; 1 unit retried" in line


def test_panel_lists_each_worker_with_its_book_and_gpu_memory() -> None:
    console = Console(width=120, record=True, color_system=None)
    console.print(_panel(_state()))
    text = console.export_text()
    assert "gpu-1 abcdef01 pid 11" in text and "cuda:0 torch" in text
    assert "c.epub" in text and "5/9" in text and "2048 MB" in text
    assert "cpu-1 99999999 pid 12" in text


def test_a_books_warnings_are_printed_with_the_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """What a local run's view prints as it goes (a read-along not made from the book's
    own pages) comes back in the book's row, and is said once the batch is done."""
    state = _state()
    state.rows[0]["warnings"] = ["warning: a-ra.epub is built from the text voicekit read"]
    rows = [dict(r) for r in state.rows]
    with pytest.raises(typer.Exit):  # b.md failed
        _summary(rows, state, ViewMode(quiet=False, json=True))
    err = capsys.readouterr().err
    assert "warning: a.md: a-ra.epub is built from the text voicekit read" in err
    with pytest.raises(typer.Exit):
        _summary(rows, state, ViewMode(quiet=True, json=False))
    assert "a-ra.epub" not in capsys.readouterr().err
