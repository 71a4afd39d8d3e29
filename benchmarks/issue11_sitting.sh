#!/usr/bin/env bash
# The issue-11 sitting of docs/BENCHMARKS.md section 14 (2026-12-06), from the repository.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
export PYTHONPATH=benchmarks
echo "== B1 alice I-II: wav vs m4b (defaults), 2 rounds"; date
$PY benchmarks/side_by_side.py --text ${ALICE:-alice-1-2.md} --rounds 2 \
  --run wav="-o {out}.wav" --run m4b="-o {out}.m4b"
echo "== B3 harbour: workers 1 vs 2 (wav)"; date
$PY benchmarks/side_by_side.py --text examples/harbour.md --rounds 2 \
  --run w1="-o {out}.wav --workers 1" --run w2="-o {out}.wav --workers 2" \
  --run w1t2="-o {out}.wav --workers 1 --threads 2"
echo "== B2a vs piper, harbour, with WER"; date
$PY benchmarks/vs_piper.py --text examples/harbour.md --rounds 2 --wer
echo "== B2b vs piper, alice I-II"; date
$PY benchmarks/vs_piper.py --text ${ALICE:-alice-1-2.md} --rounds 2
echo "== B4 bench --pipeline"; date
.venv/bin/voicekit bench --pipeline --seconds 60 --device cpu
date
