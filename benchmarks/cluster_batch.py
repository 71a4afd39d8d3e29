"""A 6-book batch: the plain local batch against the local Ray cluster with 1 and 2 workers.

    python benchmarks/cluster_batch.py [--rounds 2] [--out cluster_batch.json]

The books are six paragraphs of examples/harbour.md, one a book, made into M4B. Each
round runs every variant as a child process (the order rotates between rounds) and
measures the whole command's wall time, Ray's start included; for cluster runs the
--json summary also gives the batch's own time (from the first book handed out).
Prints a Markdown table of medians and writes the raw numbers as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent
VARIANTS: dict[str, dict[str, str] | None] = {
    "local batch (no Ray)": None,
    "cluster local, 1 worker (2 cores)": {"VOICEKIT_CLUSTER_WORKERS": "1"},
    "cluster local, 2 workers (1 core each)": {"VOICEKIT_CLUSTER_CPUS": "1"},
    "cluster local, 2 workers, object store": {
        "VOICEKIT_CLUSTER_CPUS": "1",
        "VOICEKIT_CLUSTER_STORAGE": "object-store",
    },
}


def make_books(folder: Path, count: int = 6) -> list[Path]:
    text = (ROOT / "examples" / "harbour.md").read_text(encoding="utf-8")
    paragraphs = [p for p in text.split("\n\n") if len(p.split()) > 60][:count]
    books = []
    for i, paragraph in enumerate(paragraphs):
        path = folder / f"book{i + 1}.md"
        path.write_text(f"# Book {i + 1}\n\n{paragraph}\n", encoding="utf-8")
        books.append(path)
    return books


def run(name: str, env_extra: dict[str, str] | None, books: list[Path], out: Path) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    command = [sys.executable, "-m", "voicekit", "synth", *map(str, books), "-o", str(out),
               "-f", "m4b", "--json"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEKIT_CLUSTER")}
    env["PYTHONPATH"] = str(ROOT)
    if env_extra is not None:
        command += ["--cluster", "local"]
        env.update(env_extra)
    began = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - began
    if done.returncode != 0:
        raise SystemExit(f"{name} failed ({done.returncode}): {done.stderr[-2000:]}")
    summary = json.loads(done.stdout)
    audio = sum(r["audio_seconds"] for r in summary["books"])
    batch = summary["cluster"]["wall_seconds"] if "cluster" in summary else None
    nodes = {r.get("pid") for r in summary["books"]} - {None}
    ranges = sum(r.get("ranges", 0) for r in summary["books"])  # books made in ranges
    return {"variant": name, "wall": wall, "batch": batch, "audio": audio,
            "workers": len(nodes) or 1, "ranges": ranges}  # fmt: skip


def measure(
    names: list[str], rounds: int, one: Callable[[str], dict[str, Any]], out: Path
) -> list[dict[str, Any]]:
    """``one(name)`` for every variant, ``rounds`` times, each round starting one variant
    later (no variant always runs first on a machine that warms or slows as it goes);
    every row is printed as it comes and all of them written to ``out`` as JSON."""
    rows = []
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            row = one(name)
            print(json.dumps(row), file=sys.stderr, flush=True)
            rows.append(row)
    out.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("cluster_batch.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        books = make_books(Path(tmp))
        rows = measure(
            list(VARIANTS),
            args.rounds,
            lambda name: run(name, VARIANTS[name], books, Path(tmp) / "out"),
            args.out,
        )
    print("| variant | wall s (median) | batch s (median) | audio s | x real time (wall) |")
    print("|---|---|---|---|---|")
    for name in VARIANTS:
        mine = [r for r in rows if r["variant"] == name]
        wall = statistics.median(r["wall"] for r in mine)
        batches = [r["batch"] for r in mine if r["batch"] is not None]
        batch = f"{statistics.median(batches):.1f}" if batches else "-"
        audio = mine[0]["audio"]
        print(f"| {name} | {wall:.1f} | {batch} | {audio:.1f} | {audio / wall:.1f}x |")


if __name__ == "__main__":
    main()
