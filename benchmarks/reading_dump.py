"""Dump the sentences voicekit would give the voice, for diffing two versions of the code.

    PYTHONPATH=/path/to/tree python benchmarks/reading_dump.py > sentences.txt

Covers the bench text (as `bench` reads it) and examples/harbour.md (as `synth` plans it),
with default settings. Run it against main and a branch, then diff the two files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from voicekit.diagnostics.bench import bench_text
from voicekit.settings import SynthSettings
from voicekit.synth.plan import build_plan
from voicekit.text.normalize import normalize_text
from voicekit.text.sentences import split_sentences
from voicekit.text.sources import load_source

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    out = sys.stdout
    out.write("### bench_text.txt\n")
    text = "\n".join(line for line in bench_text().splitlines() if not line.startswith("#"))
    for paragraph in text.split("\n\n"):
        if paragraph.strip():
            for sentence in split_sentences(normalize_text(paragraph, "en"), 400):
                out.write(sentence + "\n")
    out.write("### examples/harbour.md\n")
    book = load_source(ROOT / "examples" / "harbour.md")
    plan = build_plan(book, SynthSettings(), language="en_US", fingerprint="x")
    for bucket in plan.buckets:
        for sentence in bucket.sentences:
            out.write(f"{bucket.id}\t{sentence}\n")


if __name__ == "__main__":
    main()
