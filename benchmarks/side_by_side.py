"""voicekit runs with different flags, side by side in one sitting, alternating order.

    python benchmarks/side_by_side.py --text TEXT [--rounds 2] \\
        --run wav="-o {out}.wav" --run m4b="-o {out}.m4b" [--run ...] [--before CHECKOUT]

Each run is ``voicekit synth TEXT --force --restart --quiet FLAGS`` as a child process
(``{out}`` is a path in a temp folder). Rounds alternate the order of the runs, so a
machine that slows down or speeds up mid-way weighs on every run alike. Reports the
best and median wall time of each run, its peak memory (the process tree, as in
vs_piper.py) and its wall time over the first run's. ``--before CHECKOUT`` adds each run
again as "NAME-before", with the voicekit of another checkout (a ``git worktree`` of an
older commit) first on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
from pathlib import Path

from vs_piper import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--run", action="append", required=True, metavar='NAME="FLAGS"')
    parser.add_argument("--out", type=Path, default=None, help="write the raw numbers as JSON")
    parser.add_argument("--before", type=Path, default=None, metavar="CHECKOUT")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="side-by-side-"))
    runs = []
    for spec in args.run:
        name, _, flags = spec.partition("=")
        cmd = [sys.executable, "-m", "voicekit", "synth", str(args.text.resolve()), "--force",
               "--restart", "--quiet", *shlex.split(flags.replace("{out}", str(work / name)))]
        runs.append((name, cmd))
        if args.before:
            runs.append((f"{name}-before", ["env", f"PYTHONPATH={args.before.resolve()}", *cmd]))
    walls: dict[str, list[float]] = {name: [] for name, _ in runs}
    peaks: dict[str, list[float]] = {name: [] for name, _ in runs}
    for i in range(args.rounds):
        for name, cmd in runs if i % 2 == 0 else runs[::-1]:
            # from the scratch folder: ``python -m`` puts the working folder first on
            # sys.path, ahead of PYTHONPATH, so a checkout's would shadow --before's
            wall, rss = run(cmd, cwd=work)
            walls[name].append(wall)
            peaks[name].append(rss)
            print(f"round {i + 1} {name:12s} wall {wall:7.2f} s  peak {rss:6.0f} MB",
                  file=sys.stderr)
    first = runs[0][0]
    print(f"| run | best wall s | median wall s | peak MB | best / {first} |")
    print("|---|---|---|---|---|")
    for name, _ in runs:
        best = min(walls[name])
        print(f"| {name} | {best:.2f} | {statistics.median(walls[name]):.2f} | "
              f"{max(peaks[name]):.0f} | {best / min(walls[first]):.3f} |")
    if args.out:
        args.out.write_text(json.dumps({"walls": walls, "peaks": peaks}, indent=1))


if __name__ == "__main__":
    main()
