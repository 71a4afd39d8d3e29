"""Where a cluster batch stands: what the driver yields and the CLI draws."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class ClusterState:
    """Where the batch stands, across the cluster (what the CLI draws)."""

    books: int
    rows: list[dict[str, Any]] = field(default_factory=list)
    workers: list[dict[str, Any]] = field(default_factory=list)
    """Each worker's snapshot: node, host, device, the book in hand, its totals."""
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: bool = False

    @property
    def done(self) -> int:
        return sum(r["status"] == "done" for r in self.rows)

    @property
    def failed(self) -> int:
        return sum(r["status"] == "failed" for r in self.rows)

    @property
    def in_flight(self) -> list[dict[str, Any]]:
        """What each busy worker is making (a book split in ranges: several of them)."""
        return [w["now"] for w in self.workers if w.get("now")]

    def totals(self) -> dict[str, Any]:
        """Books, buckets, audio made and the cluster's x-real-time so far."""
        audio = sum(w.get("audio_seconds", 0.0) for w in self.workers)
        audio += sum(n.get("audio_seconds", 0.0) for n in self.in_flight)
        wall = time.monotonic() - self.started
        return {
            "books": self.books, "done": self.done, "failed": self.failed,
            "in_flight": len({n.get("book") for n in self.in_flight}), "retries": self.retries,
            "buckets_made": sum(w.get("buckets", 0) for w in self.workers),
            "audio_seconds": round(audio, 3), "wall_seconds": round(wall, 3),
            "x_realtime": round(audio / wall, 2) if wall > 0 and audio else None,
            "workers": len(self.workers),
        }  # fmt: skip
