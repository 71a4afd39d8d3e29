"""The driver killed mid-batch (SIGKILL, Ray's own processes with it): the same command
run again resumes every book from its job folder and makes the same bytes."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster.conftest import CPU, write_books

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def _command(books: list[Path], out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "voicekit", "synth", *map(str, books), "-o", str(out),
            *CPU, *extra]  # fmt: skip


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a Ray of its own
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["VOICEKIT_CLUSTER_CPUS"] = "1"  # two workers on a two-core machine
    return env


def _kill_tree(pid: int) -> None:
    """SIGKILL the driver and everything it started (Ray's head processes and workers)."""
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:  # ended (and reaped) by itself: the test says why
        return
    for _ in range(5):  # Ray starts and ends worker processes while the tree is read
        try:
            family = [parent, *parent.children(recursive=True)]
            break
        except psutil.NoSuchProcess:
            continue
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):  # gone by itself meanwhile
            proc.send_signal(signal.SIGKILL)
    psutil.wait_procs(family, timeout=30)


def test_rerun_after_the_driver_was_killed_resumes(ray_cluster: object, tmp_path: Path) -> None:
    books = write_books(tmp_path / "in")
    local, out = tmp_path / "local", tmp_path / "cluster"
    done = subprocess.run(_command(books, local, "-q"), env=_env(), capture_output=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    log = (tmp_path / "driver.log").open("wb")
    # with the tests' own two-node cluster running: "local" must start a Ray of its own
    driver = subprocess.Popen(_command(books, out, "-q", "--cluster", "local"), env=_env(),
                              stdout=log, stderr=log)  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not list(out.glob("*.voicekit-job/segments/*.npz")):
            if driver.poll() is not None:
                text = (tmp_path / "driver.log").read_text(errors="replace")
                raise AssertionError(f"the driver ended before any bucket was made: {text}")
            assert time.monotonic() < deadline, "no bucket made in 3 minutes"
            time.sleep(0.2)
    finally:
        _kill_tree(driver.pid)
        log.close()
    assert list(out.glob("*.voicekit-job"))  # work was left to resume
    rerun = subprocess.run(_command(books, out, "--json", "--cluster", "local"), env=_env(),
                           capture_output=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr.decode()
    rows = json.loads(rerun.stdout)["books"]
    assert [r["status"] for r in rows] == ["done"] * 3
    assert sum(r["resumed"] for r in rows) >= 1
    for path in local.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    assert not list(out.glob("*.voicekit-job"))
