"""A two-node Ray cluster on this machine, shared by the cluster tests (it takes ~15 s).

Each node offers one CPU and a small object store, and no dashboard: CI machines have
two cores. Without Ray the tests that use it are skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.text.epub_factory import build_epub

CPU = ["--device", "cpu", "--backend", "ort", "--workers", "1", "--bucket-size", "1",
       "--sentence-silence", "0.1", "--paragraph-silence", "0.2",
       "--chapter-silence", "0.3"]  # fmt: skip
"""Settings of every cluster test, local or not. --workers 1: one synthesis process
(the cluster's workers hold one core each); --bucket-size 1: a bucket per sentence,
so a book is several units to kill in the middle of."""
OBJECT_STORE = 80 * 2**20


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": OBJECT_STORE}
    cluster = Cluster(initialize_head=True,
                      head_node_args={**node, "include_dashboard": False})  # fmt: skip
    cluster.add_node(**node)
    ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
    try:
        yield cluster
    finally:
        ray.shutdown()
        cluster.shutdown()


def write_books(folder: Path, count: int = 3) -> list[Path]:
    """Small books: Markdown of a few sentences each, and an EPUB of two chapters."""
    folder.mkdir(parents=True, exist_ok=True)
    books = []
    for i in range(count - 1):
        path = folder / f"book{i}.md"
        path.write_text(
            f"# Book {i}\n\nThe fox number {i} jumps over the lazy dog. It was a bright cold "
            "day in April. The clocks were striking thirteen.\n\nA second paragraph. It ends "
            f"here, in book {i}.\n",
            encoding="utf-8",
        )
        books.append(path)
    chapters = [("One", "<h1>One</h1><p>Hello there. How are you?</p>"),
                ("Two", "<h1>Two</h1><p>Good night. Sleep well.</p>")]  # fmt: skip
    books.append(build_epub(folder / "tale.epub", title="Tale", chapters=chapters,
                            front_matter=False, license_page=False))  # fmt: skip
    return books
