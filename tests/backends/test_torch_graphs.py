"""CUDA graph capture of the torch backend."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from voicekit.backends.torch.graphs import GraphCache  # noqa: E402


@pytest.mark.gpu
def test_graph_cache_replays_captured_graphs() -> None:
    calls = []

    def fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor]:
        calls.append(x.shape)
        return (torch.tanh(x) * 2 + y,)

    cache = GraphCache(fn, max_graphs=2)
    x = torch.randn(4, 16, device="cuda")
    y = torch.randn(4, 16, device="cuda")
    (out,) = cache(x, y)
    torch.testing.assert_close(out, torch.tanh(x) * 2 + y)
    before = len(calls)
    x2 = torch.randn(4, 16, device="cuda")
    (out2,) = cache(x2, y)
    assert len(calls) == before  # replayed, not run again in Python
    torch.testing.assert_close(out2, torch.tanh(x2) * 2 + y)
    cache(torch.randn(8, 16, device="cuda"), torch.randn(8, 16, device="cuda"))
    cache(torch.randn(2, 16, device="cuda"), torch.randn(2, 16, device="cuda"))
    assert len(cache) == 2 and cache.captures == 3  # least recently used evicted
