"""CUDA graphs captured at padded shapes.

A CUDA graph replays a fixed sequence of kernels on fixed buffers, which removes
the per-kernel launch cost that dominates HiFi-GAN on a fast GPU. Shapes must be
fixed, so inputs are padded up to a few sizes (batch and length, see ``shapes``);
the masked modules make the padding invisible in the results. Each padded shape
is captured once, on first use, and replayed after.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    inputs: list[torch.Tensor | None]
    outputs: tuple[torch.Tensor, ...]


class GraphCache:
    """Runs ``fn`` through CUDA graphs, one per input signature, least recently used first out.

    Outputs are the graph's own buffers: read (or copy) them on the same stream
    before the next call of the same signature. All calls of one cache must run on
    one stream, as its graphs share a memory pool.
    """

    def __init__(
        self, fn: Callable[..., tuple[torch.Tensor, ...]], max_graphs: int = 48, warmup: int = 2
    ) -> None:
        self.fn = fn
        self.max_graphs = max_graphs
        self.warmup = warmup
        self.captures = 0
        self._graphs: OrderedDict[tuple[object, ...], _Captured] = OrderedDict()
        self._pool = torch.cuda.graph_pool_handle()

    def __len__(self) -> int:
        return len(self._graphs)

    def __call__(self, *inputs: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        key = tuple(None if t is None else (tuple(t.shape), t.dtype, t.device) for t in inputs)
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._capture(inputs)
            self._graphs[key] = entry
            while len(self._graphs) > self.max_graphs:
                self._graphs.popitem(last=False)
        else:
            self._graphs.move_to_end(key)
        for dst, src in zip(entry.inputs, inputs, strict=True):
            if dst is not None and src is not None:
                dst.copy_(src, non_blocking=True)
        entry.graph.replay()
        return entry.outputs

    def _capture(self, inputs: Sequence[torch.Tensor | None]) -> _Captured:
        static = [None if t is None else t.clone() for t in inputs]
        stream = torch.cuda.current_stream()
        side = torch.cuda.Stream(device=stream.device)
        side.wait_stream(stream)
        # Warm-up runs pick cuDNN algorithms and fill lazy caches outside the capture.
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(*static)
        stream.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool, capture_error_mode="thread_local"):
            outputs = self.fn(*static)
        self.captures += 1
        return _Captured(graph, static, tuple(outputs))

    def clear(self) -> None:
        self._graphs.clear()
