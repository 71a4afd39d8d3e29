"""The read-along EPUB (``--readalong``) made on the two-node cluster: the one a local run
writes, whether the worker writes it in place or sends it back, for a book made whole or
in bucket ranges, and from the EPUB's bytes the driver sends (never the driver's path)."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.cluster.conftest import CPU, write_books
from tests.cluster.test_cluster import SETTINGS
from voicekit.cli.main import app
from voicekit.cluster.runner import BookUnit, ClusterRunner
from voicekit.cluster.worker import scratch_dir
from voicekit.synth.options import RunOptions, default_job_dir
from voicekit.text.sources import load_source

runner = CliRunner()
pytestmark = pytest.mark.slow
MODIFIED = re.compile(rb'(property="dcterms:modified">)[^<]*(<)')


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The EPUB of two chapters, and the audiobook and read-along a local run makes of it."""
    folder = tmp_path_factory.mktemp("readalong")
    (book,) = write_books(folder / "in", count=1)
    out = folder / "local"
    args = ["synth", str(book), "-o", str(out / "tale.m4b"), "--readalong",
            str(out / "tale-ra.epub"), "-q", *CPU]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return book, out / "tale.m4b", out / "tale-ra.epub"


def _same_readalong(made: Path, local: Path) -> None:
    """The same EPUB as a local run's: the same members, in the same order, with the
    same bytes and compression. A local run twice differs only in the zip's times and
    the package's dcterms:modified (the time it was written), so those are left out."""
    with zipfile.ZipFile(made) as one, zipfile.ZipFile(local) as other:
        infos = [(i.filename, i.compress_type) for i in one.infolist()]
        assert infos == [(i.filename, i.compress_type) for i in other.infolist()]
        for name, _ in infos:
            a, b = one.read(name), other.read(name)
            if name.endswith(".opf"):
                a, b = MODIFIED.sub(rb"\1\2", a), MODIFIED.sub(rb"\1\2", b)
            assert a == b, name
        # the book's own pages, with the spans: not the one built from the text
        assert any(n.endswith(".smil") for n, _ in infos)
        assert "OEBPS/c0001.xhtml" not in one.namelist()


def _unit(book: Path, out: Path, readalong: Path) -> BookUnit:
    options = RunOptions(fmt="m4b", readalong=readalong)
    return BookUnit(str(book), load_source(str(book)), out / "tale.m4b", options)


def test_readalong_on_the_cluster_is_the_local_one(
    ray_cluster: Any, local: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Shared storage, the book in ranges: the finishing worker writes it in place."""
    book, audiobook, readalong = local
    out = tmp_path / "cluster"
    args = ["synth", str(book), "-o", str(out / "tale.m4b"), "--readalong",
            str(out / "tale-ra.epub"), "--json", "--cluster", "auto", *CPU]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    (row,) = summary["books"]
    assert row["status"] == "done" and row["ranges"] >= 2  # made in ranges, then finished
    assert "returned_bytes" not in row  # written in place: nothing came back
    assert all(w["shared"] for w in summary["workers"])
    assert (out / "tale.m4b").read_bytes() == audiobook.read_bytes()
    _same_readalong(out / "tale-ra.epub", readalong)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "tale-ra.epub", "tale.m4b"]  # fmt: skip


def test_readalong_comes_back_where_nothing_is_shared(
    ray_cluster: Any, local: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Object-store storage, the book in ranges: made in the finishing worker's scratch
    from the bytes the driver sent (the input is gone before any worker starts), written
    by the driver."""
    book, audiobook, readalong = local
    moved = tmp_path / "in" / "tale.epub"
    moved.parent.mkdir()
    moved.write_bytes(book.read_bytes())
    out = tmp_path / "cluster"
    unit = _unit(moved, out, out / "tale-ra.epub")
    batch = ClusterRunner(SETTINGS, storage="object-store")
    states = []
    for state in batch.run([unit]):
        if not states:  # the driver has read it: a worker could not, on another node
            moved.unlink()
        states.append(state)
    (row,) = states[-1].rows
    assert row["status"] == "done", row.get("error")
    assert row["ranges"] >= 2 and row["returned_bytes"] > (out / "tale-ra.epub").stat().st_size
    assert not any(w["shared"] for w in states[-1].workers)
    assert not row.get("warnings")  # the book's own pages were found
    assert (out / "tale.m4b").read_bytes() == audiobook.read_bytes()
    _same_readalong(out / "tale-ra.epub", readalong)
    assert not scratch_dir(unit.output).exists()  # the nodes' temp folders, tidied
    assert not default_job_dir(unit.output).exists()


def test_readalong_outside_the_shared_folder_comes_back(
    ray_cluster: Any, local: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Shared storage, the book whole: a read-along outside the output folder (which a
    worker elsewhere would write on its own disk) is sent back to the driver."""
    book, audiobook, readalong = local
    out, elsewhere = tmp_path / "cluster", tmp_path / "elsewhere" / "tale-ra.epub"
    unit = _unit(book, out, elsewhere)
    *_, state = ClusterRunner(SETTINGS, split=False).run([unit])
    (row,) = state.rows
    assert row["status"] == "done", row.get("error")
    assert "ranges" not in row and row["returned_bytes"] == elsewhere.stat().st_size
    assert all(w["shared"] for w in state.workers)
    assert (out / "tale.m4b").read_bytes() == audiobook.read_bytes()
    _same_readalong(elsewhere, readalong)
    assert not scratch_dir(unit.output).exists()


def test_an_existing_readalong_is_kept_before_any_work(
    local: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """Checked on the driver, as a local run checks it: a worker that makes it in
    scratch could not, and the driver would replace the user's file."""
    pytest.importorskip("ray")
    from voicekit.errors import OutputError

    book, _, _ = local
    kept = tmp_path / "tale-ra.epub"
    kept.write_bytes(b"the user's")
    batch = ClusterRunner(SETTINGS, storage="object-store")
    with pytest.raises(OutputError, match="exists; use --force"):
        next(iter(batch.run([_unit(book, tmp_path / "out", kept)])))
    assert kept.read_bytes() == b"the user's"


def test_existing_captions_are_kept_before_any_work(
    local: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    """The same for captions: an object-store worker makes them in scratch with --force,
    and the driver wrote what came back over the user's file."""
    pytest.importorskip("ray")
    from voicekit.errors import OutputError

    book, _, _ = local
    kept = tmp_path / "out" / "tale.srt"
    kept.parent.mkdir()
    kept.write_bytes(b"the user's")
    unit = BookUnit(str(book), load_source(str(book)), tmp_path / "out" / "tale.m4b",
                    RunOptions(fmt="m4b", captions=("srt",)))  # fmt: skip
    batch = ClusterRunner(SETTINGS, storage="object-store")
    with pytest.raises(OutputError, match="exists; use --force"):
        next(iter(batch.run([unit])))
    assert kept.read_bytes() == b"the user's"
