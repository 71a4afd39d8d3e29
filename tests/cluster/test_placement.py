"""Where workers go: one per GPU, CPU nodes by cores, spread over nodes first."""

from __future__ import annotations

from typing import Any

import pytest

from voicekit.cluster.runner import ClusterRunner
from voicekit.settings import SynthSettings

pytest.importorskip("ray")  # ClusterRunner imports Ray when made


class FakeRay:
    def __init__(self, nodes: list[dict[str, Any]]) -> None:
        self._nodes = nodes

    def nodes(self) -> list[dict[str, Any]]:
        return self._nodes


def _node(name: str, alive: bool = True, **resources: float) -> dict[str, Any]:
    return {"NodeID": name, "Alive": alive, "Resources": resources}


def _runner(nodes: list[dict[str, Any]], **kw: Any) -> ClusterRunner:
    runner = ClusterRunner(SynthSettings(), **kw)
    runner.ray = FakeRay(nodes)
    return runner


NODES = [
    _node("gpu", CPU=16, GPU=2),
    _node("cpu", CPU=8),
    _node("gone", alive=False, CPU=64),
    _node("head", CPU=0),
]


def test_one_worker_per_gpu_and_one_per_cpu_node() -> None:
    places = _runner(NODES).placements()
    assert [(p["node"], p["gpus"], p["cpus"]) for p in places] == [
        ("gpu", 1, 0), ("cpu", 0, 8), ("gpu", 1, 0)]  # fmt: skip


def test_cpu_workers_sized_by_cores_and_capped() -> None:
    places = _runner(NODES, cpus_per_worker=3).placements()
    assert [(p["node"], p["cpus"]) for p in places] == [
        ("gpu", 0), ("cpu", 3), ("gpu", 0), ("cpu", 3)]  # fmt: skip
    assert len(_runner(NODES, workers=1).placements()) == 1
