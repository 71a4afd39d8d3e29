"""A blocking encode run in a worker thread, so the run's generator can report its progress.

The encoder (``formats.chapter_files.write_book``, ffmpeg behind it) reads a PCM
iterator and returns only when the file is written. Run in a worker thread, the
iterator counts the samples it hands over, and the generator that started it yields
in between, so the panel keeps moving while a book is encoded.

Signals (Ctrl-C, SIGTERM) arrive in the main thread, inside :meth:`Background.ticks`:
it then sets a stop flag that the PCM stream checks before every slice it hands
over, so the encoder fails at once in its own thread (ffmpeg is killed and the temp
file removed there, as when the PCM source fails) and the interruption goes on.
A worker blocked writing to an encoder that reads slowly would not see the flag
for a while; after half a second that encoder is killed, which breaks its pipe and
ends the worker the same way.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")
E = TypeVar("E")

SLICE = 8192
"""Samples handed over at a time: a stop is seen within one slice (0.4 s at real time)."""
PATIENCE = 0.5
"""Seconds a stopped encode may take to see the stop before its encoder is killed."""
GRACE = 5.0
"""Seconds a stopped encode may then take to end before the interruption goes on without it."""


class Stopped(Exception):
    """Raised inside the worker's PCM stream when the run is stopped."""


class Background(Generic[T]):
    """``work(pcm)`` in a worker thread; :meth:`ticks` waits for it, yielding meanwhile."""

    def __init__(self, work: Callable[[Iterable[np.ndarray]], T], pcm: Iterable[np.ndarray]):
        self._work = work
        self._pcm = pcm
        self._stop = threading.Event()
        self._done = threading.Event()
        self._result: T | None = None
        self._error: BaseException | None = None
        self.samples = 0
        """Samples the work has taken from the stream so far."""
        self.fed: float | None = None
        """When the work took the stream's last sample (``time.monotonic``), else None."""

    def _stream(self) -> Iterator[np.ndarray]:
        source = iter(self._pcm)
        try:
            for chunk in source:
                for start in range(0, len(chunk), SLICE):
                    if self._stop.is_set():
                        raise Stopped("the run was stopped")
                    piece = chunk[start : start + SLICE]
                    yield piece
                    self.samples += len(piece)
            self.fed = time.monotonic()  # what is left is the encoder's (buffers, index, tags)
        finally:
            close = getattr(source, "close", None)
            if close is not None:  # a generator: its open segment files now, not at exit
                close()

    def _target(self) -> None:
        try:
            self._result = self._work(self._stream())
        except BaseException as exc:  # handed to the main thread, which raises it
            self._error = exc
        finally:
            self._done.set()

    def ticks(self, report: Callable[[], E], every: float = 0.5) -> Generator[E, None, T]:
        """Start the work; yield ``report()`` every ``every`` seconds while it runs; return
        the work's result.

        The work's exception is raised here unchanged. An exception raised into this
        generator (Ctrl-C, SIGTERM, ``close()``) stops the work first, waiting up to
        ``GRACE`` seconds for it to end; a worker still stuck after that is a daemon
        thread, and ffmpeg dies with it when the process ends.
        """
        # Waited for with an Event, not Thread.join: on Python 3.11 a join cut short by a
        # signal marks the thread as ended while it still runs (the bpo-45274 handling in
        # Thread._wait_for_tstate_lock releases the running thread's lock).
        thread = threading.Thread(target=self._target, name="voicekit-encode", daemon=True)
        before = children()
        thread.start()
        try:
            while not self._done.wait(every):
                yield report()
        except BaseException:
            self._stop.set()
            if not self._done.wait(PATIENCE):
                # blocked writing to an encoder that reads slowly: killing it breaks the
                # pipe, so the worker fails now and removes its temp file itself
                kill_children(but=before)
                self._done.wait(GRACE)
            raise
        if self._error is not None:
            error, self._error = self._error, None  # no reference cycle through the frame
            raise error
        return self._result  # type: ignore[return-value]


def children() -> set[int]:
    import psutil

    try:
        return {child.pid for child in psutil.Process().children()}
    except psutil.Error:
        return set()


def kill_children(but: set[int]) -> None:
    """Kill this process's children but those in ``but``: the encode's ffmpeg."""
    import psutil

    try:
        children = psutil.Process().children()
    except psutil.Error:
        return
    for child in children:
        if child.pid not in but:
            with contextlib.suppress(psutil.Error):
                child.kill()
