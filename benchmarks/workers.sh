#!/bin/bash
# --workers side by side: `voicekit synth examples/harbour.md` to WAV with
#   w1    --workers 1               (in-process, onnxruntime with 1 thread: the new default)
#   w1t2  --workers 1 --threads 2   (in-process with 2 threads: the default before --workers)
#   w2    --workers 2               (two processes of 1 thread each)
# in rounds that interleave the variants (the machine is shared: compare within a round),
# then checks that the WAVs are byte-identical. Run from the repository root:
#   bash benchmarks/workers.sh [rounds] [out folder]
rounds=${1:-2}
out=${2:-/tmp/voicekit-workers}
mkdir -p "$out"
PY=${PYTHON:-python}
for round in $(seq 1 "$rounds"); do
  for v in w1 w1t2 w2; do
    case $v in w1) args="--workers 1";; w1t2) args="--workers 1 --threads 2";; w2) args="--workers 2";; esac
    wav=$out/$v-$round.wav; rm -rf "$wav" "$wav.voicekit-job"
    load=$(cut -d' ' -f1 /proc/loadavg)
    s=$(date +%s.%N)
    # shellcheck disable=SC2086
    $PY -m voicekit synth examples/harbour.md -o "$wav" $args --json > "$out/$v-$round.json" 2>/dev/null
    rc=$?
    e=$(date +%s.%N)
    echo "$v round=$round rc=$rc wall=$(echo "$e - $s" | bc) load_before=$load $($PY -c "import json; d=json.load(open('$out/$v-$round.json')); print('synth', d['synth_seconds'], 'audio', d['audio_seconds'], 'workers', d['workers'], 'stages', d['stage_seconds'])")"
  done
done
cmp "$out/w1-1.wav" "$out/w2-1.wav" && echo "w1 == w2 bytes"
cmp "$out/w1-1.wav" "$out/w1t2-1.wav" && echo "w1 == w1t2 bytes"
