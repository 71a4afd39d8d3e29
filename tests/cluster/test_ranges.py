"""A lone book on the two-node cluster is made in bucket ranges on both nodes: the same
bytes as a local run, no bucket made twice, a lost range retried from its finished
buckets, and segments sent back to the driver where nothing is shared."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cluster.conftest import CPU
from tests.cluster.test_cluster import SETTINGS, ray_cluster_nodes
from voicekit.cli.main import app
from voicekit.cluster import runner as cluster_runner
from voicekit.cluster.runner import BookUnit, ClusterRunner
from voicekit.cluster.worker import scratch_dir
from voicekit.synth.options import RunOptions, default_job_dir
from voicekit.text.sources import load_source

runner = CliRunner()
pytestmark = pytest.mark.slow
SENTENCES = [
    "The fox jumps over the lazy dog.", "It was a bright cold day in April.",
    "The clocks were striking thirteen.", "Call me Ishmael.", "Some years ago I went to sea.",
    "Happy families are all alike.", "It is a truth universally acknowledged.",
    "All this happened, more or less.", "The sky above the port was grey.",
    "A screaming comes across the sky.", "Mother died today.", "I am an invisible man.",
]  # fmt: skip
BUCKETS = len(SENTENCES) + 1  # and the chapter's title


def _write_book(folder: Path) -> Path:
    """One book: a title and twelve sentences in three paragraphs, a bucket each (CPU)."""
    folder.mkdir(parents=True, exist_ok=True)
    paragraphs = [" ".join(SENTENCES[i : i + 4]) for i in range(0, len(SENTENCES), 4)]
    path = folder / "lone.md"
    path.write_text("# A lone book\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """The book, and the bytes a plain local run makes of it."""
    folder = tmp_path_factory.mktemp("lone")
    book = _write_book(folder / "in")
    out = folder / "local" / "lone.wav"  # one input: -o names the file
    result = runner.invoke(app, ["synth", str(book), "-o", str(out), "-q", *CPU])
    assert result.exit_code == 0, result.output
    return book, out.read_bytes()


@pytest.fixture(scope="module")
def long_book(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A book of 24 long sentences, and its local bytes: ranges long enough to stop midway
    (a range of the lone book's short sentences can end between two snapshots)."""
    folder = tmp_path_factory.mktemp("long")
    sentences = [
        f"On day {n} the boats came back to the harbour, and the gulls circled low over "
        f"the grey water while the fishermen counted {n + 3} crates on the quay."
        for n in range(1, 25)
    ]
    book = folder / "in" / "lone.md"
    book.parent.mkdir()
    paragraphs = [" ".join(sentences[i : i + 6]) for i in range(0, len(sentences), 6)]
    book.write_text("# A long day\n\n" + "\n\n".join(paragraphs) + "\n", encoding="utf-8")
    out = folder / "local" / "lone.wav"
    result = runner.invoke(app, ["synth", str(book), "-o", str(out), "-q", *CPU])
    assert result.exit_code == 0, result.output
    return book, out.read_bytes()


def _unit(book: Path, out: Path) -> BookUnit:
    return BookUnit(str(book), load_source(str(book)), out / "lone.wav", RunOptions(fmt="wav"))


def _made(trace: Path) -> Counter[str]:
    return Counter(line for f in trace.iterdir() for line in f.read_text().splitlines())


def test_a_lone_book_is_made_in_ranges_on_both_nodes_with_the_local_bytes(
    ray_cluster: Any, lone: tuple[Path, bytes], tmp_path: Path
) -> None:
    book, local = lone
    out = tmp_path / "cluster"
    args = ["synth", str(book), "-o", str(out / "lone.wav"), "--json", "--cluster", "auto", *CPU]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    (row,) = summary["books"]  # a split book is still one book in the summary
    assert row["status"] == "done" and row["ranges"] >= 2
    assert set(row["nodes"]) == {n["NodeID"] for n in ray_cluster_nodes()}  # both made it
    assert (out / "lone.wav").read_bytes() == local
    # every bucket made once, across the ranges, and none by the finishing run
    assert row["synthesized"] == row["buckets"] == BUCKETS and row["resumed"] == 0
    assert summary["cluster"]["buckets_made"] == BUCKETS
    assert summary["cluster"]["done"] == 1 and summary["cluster"]["books"] == 1
    assert not default_job_dir(out / "lone.wav").exists()


def test_a_killed_range_worker_is_replaced_and_its_range_resumes(
    ray_cluster: Any, long_book: tuple[Path, bytes], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import ray

    # one range per worker: ranges of a dozen buckets, long enough to catch midway
    monkeypatch.setattr(cluster_runner, "RANGES_PER_WORKER", 1)
    book, local = long_book
    out, trace = tmp_path / "cluster", tmp_path / "trace"
    trace.mkdir()
    batch = ClusterRunner(SETTINGS, trace_dir=trace)
    killed: list[str] = []
    states = []
    for state in batch.run([_unit(book, out)]):
        states.append(state)
        for slot in list(batch.slots):
            now = slot.snapshot.get("now") or {}
            done, total = now.get("buckets_done", 0), now.get("buckets_total", 0)
            # mid-range: a bucket made, and two or more to come (the snapshot may be late)
            if not killed and now.get("range") and 1 <= done <= total - 2:
                killed.append(now["range"])
                ray.kill(slot.actor)
    assert killed, "no worker was caught in the middle of a range"
    (row,) = states[-1].rows
    assert row["status"] == "done", row.get("error")
    assert states[-1].retries >= 1
    assert (out / "lone.wav").read_bytes() == local
    made = _made(trace)  # the retry took the lost worker's finished buckets from the job
    assert max(made.values()) == 1 and len(made) <= row["buckets"]
    assert row["synthesized"] + row["resumed"] <= row["buckets"]


def test_ranges_send_their_segments_back_where_nothing_is_shared(
    ray_cluster: Any, lone: tuple[Path, bytes], tmp_path: Path
) -> None:
    book, local = lone
    out, trace = tmp_path / "cluster", tmp_path / "trace"
    trace.mkdir()
    unit = _unit(book, out)
    batch = ClusterRunner(SETTINGS, storage="object-store", trace_dir=trace)
    *_, state = batch.run([unit])
    (row,) = state.rows
    assert row["status"] == "done", row.get("error")
    assert row["ranges"] >= 2 and row["returned_bytes"] > 0
    assert set(row["nodes"]) == {n["NodeID"] for n in ray_cluster_nodes()}
    assert not any(w["shared"] for w in state.workers)
    assert (out / "lone.wav").read_bytes() == local
    made = _made(trace)
    assert len(made) == BUCKETS and max(made.values()) == 1
    assert not default_job_dir(unit.output).exists()  # the driver's copy of the job, gone
    assert not scratch_dir(unit.output).exists()  # and the nodes' temp folders


def test_a_split_book_stopped_midway_resumes_from_its_job_folder(
    ray_cluster: Any, long_book: tuple[Path, bytes], tmp_path: Path
) -> None:
    book, local = long_book
    out = tmp_path / "cluster"
    unit = _unit(book, out)
    segments = default_job_dir(unit.output) / "segments"
    batch = ClusterRunner(SETTINGS).run([unit])
    for _ in batch:  # the driver stops (Ctrl-C, killed) once a few ranges' buckets are made
        if len(list(segments.glob("*.npz"))) >= 3:
            break
    batch.close()  # its workers are killed, its hold on the job folder let go
    assert not unit.output.exists() and len(list(segments.glob("*.npz"))) >= 3
    *_, state = ClusterRunner(SETTINGS).run([_unit(book, out)])  # the same command again
    (row,) = state.rows
    assert row["status"] == "done", row.get("error")
    assert row["resumed"] >= 3 and row["synthesized"] + row["resumed"] == row["buckets"]
    assert (out / "lone.wav").read_bytes() == local
    assert not default_job_dir(unit.output).exists()
