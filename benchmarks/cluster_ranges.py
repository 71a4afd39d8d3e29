"""One book on the local Ray cluster: one worker making it whole, and two workers making
it in bucket ranges. (Two workers with VOICEKIT_CLUSTER_SPLIT=0 would be the first
variant: the driver starts no more workers than the batch has shares of work.)

    python benchmarks/cluster_ranges.py [--rounds 2] [--paragraphs 2] [--out ranges.json]

The book is the first ``--paragraphs`` long paragraphs of examples/harbour.md, made into
M4B. Each round runs every variant as a child process (the order rotates between
rounds), as benchmarks/cluster_batch.py does; prints a Markdown table of medians and
writes the raw numbers as JSON to --out.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path
from typing import Any

from cluster_batch import ROOT, measure, run  # beside this script: the same child-process runner

ONE_CORE = {"VOICEKIT_CLUSTER_CPUS": "1"}
VARIANTS: dict[str, dict[str, str]] = {
    "1 worker (1 core)": {**ONE_CORE, "VOICEKIT_CLUSTER_WORKERS": "1"},
    "2 workers (1 core each), ranges": ONE_CORE,
}


def make_book(folder: Path, paragraphs: int) -> Path:
    text = (ROOT / "examples" / "harbour.md").read_text(encoding="utf-8")
    chosen = [p for p in text.split("\n\n") if len(p.split()) > 60][:paragraphs]
    path = folder / "lone.md"
    path.write_text("# A lone book\n\n" + "\n\n".join(chosen) + "\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--paragraphs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("cluster_ranges.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        book = make_book(Path(tmp), args.paragraphs)
        out = Path(tmp) / "out"  # one input: -o names the file; the folder goes

        def one(name: str) -> dict[str, Any]:
            shutil.rmtree(out, ignore_errors=True)
            return run(name, VARIANTS[name], [book], out / "lone.m4b")

        rows = measure(list(VARIANTS), args.rounds, one, args.out)
    print("| variant | wall s | median | batch s | median | audio s |")
    print("|---|---|---|---|---|---|")
    for name in VARIANTS:
        mine = [r for r in rows if r["variant"] == name]
        walls = [r["wall"] for r in mine]
        batches = [r["batch"] for r in mine]
        print(f"| {name} | {', '.join(f'{w:.1f}' for w in walls)} | "
              f"{statistics.median(walls):.1f} | {', '.join(f'{b:.1f}' for b in batches)} | "
              f"{statistics.median(batches):.1f} | {mine[0]['audio']:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
