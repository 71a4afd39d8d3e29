"""MemoryMonitor: peaks and means, one-time warnings, the sampling thread."""

from __future__ import annotations

import time

from voicekit.system.monitor import MemoryMonitor


def probe_of(values: list[tuple[float, float] | None]):  # type: ignore[no-untyped-def]
    it = iter(values)
    return lambda: next(it)


def test_gpu_peak_and_last_reading() -> None:
    mon = MemoryMonitor(gpu_probe=probe_of([(100, 1000), (300, 1000), (200, 1000)]), ram_probe=None)
    for _ in range(3):
        mon.sample()
    s = mon.stats
    assert (s.gpu_mb, s.peak_gpu_mb, s.gpu_total_mb, s.gpu_fraction) == (200, 300, 1000, 0.2)
    assert s.samples == 3
    assert s.peak_rss_mb >= s.mean_rss_mb > 0
    assert mon.take_warnings() == []


def test_failed_gpu_read_keeps_the_last_figure() -> None:
    mon = MemoryMonitor(gpu_probe=probe_of([(400, 1000), None]), ram_probe=None)
    mon.sample()
    mon.sample()
    assert (mon.stats.gpu_mb, mon.stats.peak_gpu_mb) == (400, 400)


def test_gpu_warning_is_raised_once() -> None:
    mon = MemoryMonitor(
        gpu_probe=probe_of([(500, 1000), (950, 1000), (990, 1000), (400, 1000), (960, 1000)]),
        ram_probe=None,
        device="cuda:1",
    )
    mon.sample()
    assert mon.take_warnings() == []
    mon.sample()
    warnings = mon.take_warnings()
    assert len(warnings) == 1
    assert warnings[0].startswith("cuda:1 memory above 90%: 950 of 1,000 MB in use")
    for _ in range(3):  # still high, back down, high again: said once is enough
        mon.sample()
    assert mon.take_warnings() == []


def test_ram_warning() -> None:
    ram = iter([50.0, 93.5, 95.0])
    mon = MemoryMonitor(ram_probe=lambda: next(ram))
    mon.sample()
    mon.sample()
    mon.sample()
    (warning,) = mon.take_warnings()
    assert warning.startswith("system memory above 90% (94% in use")


def test_thread_samples_until_stopped() -> None:
    with MemoryMonitor(interval=0.01, ram_probe=None) as mon:
        time.sleep(0.1)
    samples = mon.stats.samples
    assert samples >= 3
    time.sleep(0.05)
    assert mon.stats.samples == samples  # stopped
    assert mon.stats.peak_gpu_mb is None  # no probe: no GPU figures


def test_outside_warnings_share_the_channel() -> None:
    mon = MemoryMonitor(ram_probe=None)
    mon.warn("batch size lowered from 64 to 32 to fit memory")
    mon.warn("batch size lowered from 64 to 32 to fit memory")
    assert mon.take_warnings() == ["batch size lowered from 64 to 32 to fit memory"]
    assert mon.take_warnings() == []


def test_the_run_s_memory_counts_its_child_processes() -> None:
    # --workers runs the voice in child processes: the main process alone is a sliver
    import subprocess
    import sys

    mon = MemoryMonitor(ram_probe=None)
    alone = mon.sample().rss_mb
    hold = "x = bytearray(200 * 2**20); x[::4096] = b'1' * len(x[::4096]); print(1, flush=True);"
    child = subprocess.Popen(
        [sys.executable, "-c", hold + " import time; time.sleep(30)"], stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"1"
        assert mon.sample().rss_mb >= alone + 190
    finally:
        child.kill()
        child.wait()


def test_a_child_between_fork_and_exec_is_not_counted_twice() -> None:
    # Python starting an ffmpeg forks first: until the exec the child shows this
    # process's command line and all of its pages, which it only shares
    import os

    mon = MemoryMonitor(ram_probe=None)
    hold = bytearray(200 * 2**20)
    hold[::4096] = b"1" * len(hold[::4096])  # resident, so a double count would show
    alone = mon.sample().rss_mb
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never execs: it waits for the parent to say so, then leaves
        os.close(writer)
        os.read(reader, 1)
        os._exit(0)
    try:
        os.close(reader)
        assert mon.sample().rss_mb < alone + 100
    finally:
        os.write(writer, b"x")
        os.close(writer)
        os.waitpid(pid, 0)
