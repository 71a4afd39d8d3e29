"""The 2-D vocoder cut at its upsamplings, the later stages run in short tiles.

HiFi-GAN's largest tensors are its last stages' (64 channels at the full sample rate,
128 at a quarter): a 288-frame window held about 90 MB of them at once, and every
window also pushed its 16 frames of overlap on each side through every stage. Cut
before each upsampling after the first, a window goes through the first stage whole,
and only the part it keeps goes through the rest, in tiles of ``TILE`` first-stage
samples (64 frames), each with the context its convolutions reach. On onnxruntime,
one thread, the vocoder took about 10% less CPU time; whole runs with two lanes peaked
about 140 MB lower (docs/BENCHMARKS.md, section 14.7). The audio was the whole graph's bit
for bit on an AVX2 CPU: onnxruntime's convolutions gave every output sample the same
bits however wide the tensor around it (tests/backends/test_vocoder_stages.py holds it
to float rounding, as another CPU's kernels may add up in another order).

``reach`` reads how far a stage's output looks into its input from the graph, so a
tile's context is what the convolutions need, not a guess.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from voicekit.backends.conv2d import CONVS, ELEMENTWISE

TILE = 512
"""First-stage samples (64 frames at the first upsampling's 8x) per tile of the later
stages: 256 to 1,024 ran alike, 128 was slower (more runs, more context)."""


class Stage:
    """One stage's session and shape: ``radius`` input samples of context each side,
    ``up`` output samples per input sample."""

    def __init__(self, session: Any, radius: int, up: int) -> None:
        self.session = session
        self.radius = radius
        self.up = up
        self._input = session.get_inputs()[0].name
        self._output = session.get_outputs()[0].name

    def run(self, x: np.ndarray, run_options: Any) -> np.ndarray:
        feed = {self._input: np.ascontiguousarray(x)}
        (out,) = self.session.run([self._output], feed, run_options)
        return out


def cut(model: Any) -> tuple[list[tuple[Any, int, int]], str]:
    """``model`` (a single-input 2-D vocoder graph) cut before every upsampling but the
    first: [(stage graph, radius, up), ...], or [] and why it was left whole."""
    from onnx.utils import Extractor

    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        return [], "the vocoder has more than one input or output"
    odd = {n.op_type for n in graph.node} - CONVS - ELEMENTWISE - {"Unsqueeze", "Identity"}
    if odd:  # reach() knows how far these look only for convolutions and point-wise ops
        return [], f"the vocoder has operations reach() does not know: {', '.join(sorted(odd))}"
    strided = [n.name for n in graph.node if n.op_type == "Conv" and _stride(n) != 1]
    if strided:
        return [], f"the vocoder has strided convolutions: {', '.join(strided)}"
    ups = [node for node in graph.node if node.op_type == "ConvTranspose"]
    if len(ups) < 2:
        return [], "the vocoder has fewer than two upsamplings"
    names = [graph.input[0].name, *(node.input[0] for node in ups[1:]), graph.output[0].name]
    extractor = Extractor(model)
    stages = []
    for first, last in itertools.pairwise(names):
        stage = extractor.extract_model([first], [last])
        radius, up = reach(stage)
        stages.append((stage, radius, up))
    return stages, ""


def _stride(node: Any) -> int:
    from onnx import helper

    for attr in node.attribute:
        if attr.name == "strides":
            return int(helper.get_attribute_value(attr)[-1])
    return 1


def reach(model: Any) -> tuple[int, int]:
    """(radius, up) of a graph of convolutions, transposed convolutions and element-wise
    operations: how many input samples each side one output sample depends on, at
    most, and how many output samples one input sample makes."""
    from onnx import helper

    graph = model.graph
    weights = {w.name: w for w in graph.initializer}
    source = graph.input[0].name
    # per tensor: its reach back into the input, in its own samples, and its rate
    back: dict[str, float] = {source: 0.0}
    rate: dict[str, int] = {source: 1}
    for node in graph.node:
        inputs = [name for name in node.input if name in back]
        if not inputs:
            continue
        far, step = max(back[name] for name in inputs), rate[inputs[0]]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "Conv":
            width = weights[node.input[1]].dims[-1]
            span = attrs.get("dilations", [1])[-1] * (width - 1)
            pads = attrs.get("pads", [0, 0, 0, 0])
            before = pads[len(pads) // 2 - 1]  # the last axis's start pad: time
            far += max(before, span - before)
        elif node.op_type == "ConvTranspose":
            stride = attrs.get("strides", [1])[-1]
            width = weights[node.input[1]].dims[-1]
            far = (far + math.ceil(width / stride)) * stride
            step *= stride
        for name in node.output:
            back[name], rate[name] = far, step
    out = graph.output[0].name
    return math.ceil(back[out] / rate[out]) + 1, rate[out]


class StagedRun:
    """A window of latent frames through the stages: the first over all of it, the
    rest tile by tile."""

    def __init__(self, stages: Sequence[Stage], tile: int = TILE) -> None:
        self.stages = list(stages)
        self.tile = tile
        first, *later = self.stages
        # first-stage samples the later stages need beyond a tile, in all and after each
        scale, needs = 1, []
        for stage in later:
            needs.append(math.ceil(stage.radius / scale))
            scale *= stage.up
        self._after = [sum(needs[i + 1 :]) for i in range(len(needs))]
        self.margin = sum(needs)
        self.frames_margin = first.radius + math.ceil(self.margin / first.up)
        """Latent frames a window needs beyond what it keeps for its kept audio to be
        exact (the chunk overlap must be at least this)."""

    def __call__(self, z: np.ndarray, keep: tuple[int, int], run_options: Any) -> np.ndarray:
        """Audio of latent frames ``keep`` (relative to ``z``, a window ``[1, C, n]``)."""
        first, *later = self.stages
        if keep[1] <= keep[0]:
            return np.zeros(0, dtype=np.float32)
        x1 = first.run(z, run_options)
        n1 = x1.shape[-1]
        start, stop = keep[0] * first.up, keep[1] * first.up
        tiles = []
        for a in range(start, stop, self.tile):
            b = min(stop, a + self.tile)
            lo, hi = max(0, a - self.margin), min(n1, b + self.margin)
            x, scale = x1[..., lo:hi], 1
            for stage, after in zip(later, self._after, strict=True):
                x = stage.run(x, run_options)
                scale *= stage.up
                # what the stages after this one still need: the rest is dropped
                new_lo, new_hi = max(0, a - after), min(n1, b + after)
                x = x[..., (new_lo - lo) * scale : (new_hi - lo) * scale]
                lo, hi = new_lo, new_hi
            tiles.append(x.reshape(-1))
        return tiles[0] if len(tiles) == 1 else np.concatenate(tiles)
