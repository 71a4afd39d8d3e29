"""Books made on a two-node Ray cluster: the same bytes as a local run, every node busy,
lost workers retried without remaking finished buckets, bad books reported."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cluster.conftest import CPU, write_books
from voicekit.cli.main import app
from voicekit.cluster import runner as runner_module
from voicekit.cluster.runner import BookUnit, ClusterRunner
from voicekit.cluster.worker import scratch_dir
from voicekit.settings import SynthSettings
from voicekit.synth.options import RunOptions
from voicekit.text.sources import load_source

runner = CliRunner()
pytestmark = pytest.mark.slow
SETTINGS = SynthSettings(device="cpu", backend="ort", workers=1, bucket_size=1,
                         sentence_silence=0.1, paragraph_silence=0.2,
                         chapter_silence=0.3)  # fmt: skip


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], Path]:
    """The books, and what the plain local batch makes of them (the reference bytes)."""
    folder = tmp_path_factory.mktemp("books")
    books = write_books(folder / "in")
    out = folder / "local"
    result = runner.invoke(app, ["synth", *map(str, books), "-o", str(out), "-q", *CPU])
    assert result.exit_code == 0, result.output
    return books, out


def _same_files(one: Path, other: Path) -> None:
    names = sorted(p.name for p in one.iterdir())
    assert names == sorted(p.name for p in other.iterdir() if not p.name.startswith("."))
    for name in names:
        assert (one / name).read_bytes() == (other / name).read_bytes(), name


def test_cluster_batch_matches_local_and_uses_every_node(
    ray_cluster: Any, local_run: tuple[list[Path], Path], tmp_path: Path
) -> None:
    books, local = local_run
    out = tmp_path / "cluster"
    args = ["synth", *map(str, books), "-o", str(out), "--json", "--cluster", "auto", *CPU]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["ok"] and [r["status"] for r in summary["books"]] == ["done"] * 3
    _same_files(local, out)
    nodes = {n["NodeID"] for n in ray_cluster_nodes()}
    assert {r["node"] for r in summary["books"]} == nodes  # each node made a book
    assert summary["cluster"]["done"] == 3 and summary["cluster"]["workers"] == 2
    assert {w["node"] for w in summary["workers"]} == nodes
    assert all(w["shared"] for w in summary["workers"])  # the probe was seen: one filesystem


def ray_cluster_nodes() -> list[dict[str, Any]]:
    import ray

    return [n for n in ray.nodes() if n["Alive"]]


def _units(books: list[Path], out: Path) -> list[BookUnit]:
    units = []
    for path in books:
        fmt = "m4b" if path.suffix == ".epub" else "wav"
        output = out / f"{path.stem}.{fmt}"
        units.append(BookUnit(str(path), load_source(str(path)), output, RunOptions(fmt=fmt)))
    return units


def test_a_killed_worker_is_replaced_and_its_book_resumes(
    ray_cluster: Any,
    local_run: tuple[list[Path], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import ray

    # Snapshots ten times as often: these books are short enough to end between two
    # half-second snapshots, and then no worker is caught midway (seen once in a full run).
    monkeypatch.setattr(runner_module, "POLL_SECONDS", 0.05)
    books, local = local_run
    out = tmp_path / "cluster"
    trace = tmp_path / "trace"
    trace.mkdir()
    batch = ClusterRunner(SETTINGS, trace_dir=trace)
    killed: set[str] = set()
    states = []
    for state in batch.run(_units(books, out)):
        states.append(state)
        for slot in list(batch.slots):
            now = slot.snapshot.get("now") or {}
            if not killed and now.get("phase") == "synth" and now.get("buckets_done", 0) >= 2:
                killed.add(now["book"])  # mid-book: some buckets made, more to come
                ray.kill(slot.actor)
    assert killed, "no worker was caught in the middle of a book"
    state = states[-1]
    rows = {r["input"]: r for r in state.rows}
    assert [r["status"] for r in rows.values()] == ["done"] * 3
    assert state.retries == 1
    (book,) = killed
    assert rows[book]["attempts"] == 2 and rows[book]["resumed"] >= 2
    _same_files(local, out)
    # every bucket a worker finished was made once: the retry took the lost one's from disk
    made = Counter(line for f in trace.iterdir() for line in f.read_text().splitlines())
    assert made and max(made.values()) == 1
    for row in rows.values():  # and every book's buckets were made or resumed, no more
        assert row["synthesized"] + row["resumed"] <= row["buckets"]


def test_object_store_mode_sends_files_back_to_the_driver(
    ray_cluster: Any, local_run: tuple[list[Path], Path], tmp_path: Path
) -> None:
    books, local = local_run
    out = tmp_path / "cluster"
    batch = ClusterRunner(SETTINGS, storage="object-store")
    units = _units(books, out)
    *_, state = batch.run(units)
    assert [r["status"] for r in state.rows] == ["done"] * 3
    assert all(r["returned_bytes"] > 0 for r in state.rows)
    assert not any(w["shared"] for w in state.workers)
    _same_files(local, out)
    assert not any(scratch_dir(u.output).exists() for u in units)  # scratch tidied


def test_a_corrupt_epub_is_named_while_the_others_finish(
    ray_cluster: Any, local_run: tuple[list[Path], Path], tmp_path: Path
) -> None:
    books, local = local_run
    broken = tmp_path / "broken.epub"
    broken.write_bytes(books[-1].read_bytes()[:300])  # a truncated download
    out = tmp_path / "cluster"
    args = ["synth", str(books[0]), str(broken), str(books[1]), "-o", str(out), "--json",
            "--cluster", "auto", *CPU]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    rows = {Path(r["input"]).name: r for r in json.loads(result.stdout)["books"]}
    assert rows["broken.epub"]["status"] == "failed" and rows["broken.epub"]["error"]
    assert rows["book0.md"]["status"] == rows["book1.md"]["status"] == "done"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "book0.wav", "book1.wav"]  # fmt: skip
    assert (out / "book0.wav").read_bytes() == (local / "book0.wav").read_bytes()


def test_workers_that_cannot_start_end_the_batch_in_one_line(
    ray_cluster: Any, local_run: tuple[list[Path], Path], tmp_path: Path
) -> None:
    from voicekit.errors import SynthesisError

    books, _ = local_run
    batch = ClusterRunner(SETTINGS.replace(device="cuda:0"))  # no GPU on these nodes
    with pytest.raises(SynthesisError, match=r"cluster workers could not start: .*cuda"):
        list(batch.run(_units(books, tmp_path / "out")))


def test_a_node_lost_mid_book_has_its_book_resumed_elsewhere(
    ray_cluster: Any, local_run: tuple[list[Path], Path], tmp_path: Path
) -> None:
    books, local = local_run
    extra = ray_cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)
    ray_cluster.wait_for_nodes()
    out, trace = tmp_path / "cluster", tmp_path / "trace"
    trace.mkdir()
    # whole books: three workers would split the two bigger ones (test_ranges covers that)
    batch = ClusterRunner(SETTINGS, trace_dir=trace, split=False)
    lost: list[str] = []
    made_before = 0
    states = []
    for state in batch.run(_units(books, out)):
        states.append(state)
        for slot in list(batch.slots):
            now = slot.snapshot.get("now") or {}
            on_extra = slot.info.get("node") == extra.node_id
            if on_extra and not lost and now.get("phase") in ("plan", "load", "synth"):
                lost.append(now["book"])
                made_before = now["buckets_done"]
                ray_cluster.remove_node(extra)  # the node's raylet and its workers are gone
    assert lost, "the extra node's worker was not caught in the middle of a book"
    rows = {r["input"]: r for r in states[-1].rows}
    errors = [r.get("error") for r in rows.values()]
    assert [r["status"] for r in rows.values()] == ["done"] * 3, errors
    assert rows[lost[0]]["attempts"] == 2 and rows[lost[0]]["resumed"] >= made_before
    assert rows[lost[0]]["node"] != extra.node_id
    _same_files(local, out)
    made = Counter(line for f in trace.iterdir() for line in f.read_text().splitlines())
    assert max(made.values()) == 1
