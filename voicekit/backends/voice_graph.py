"""Split a Piper VITS ONNX voice into encoder, flow and vocoder graphs.

The whole graph is   text -> [encoder + durations] -> m_p, logs_p, mask -> (+ prior noise)
-> [flow] -> latents -> [decoder] -> audio.  The acoustic stage is the first two
pieces: the prior noise's shape is only known once the durations are, so the
engine draws it between them. The two ``RandomNormalLike`` nodes become the
inputs ``noise_w`` and ``noise``; everything else is the voice's own graph,
so the pieces reproduce the whole model bit for bit (tests/backends/test_onnx_split.py).

Files are cached under ``<cache>/split/v<SPLIT_VERSION>-<voice hash>/`` and built atomically.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from voicekit.backends.conv2d import as_conv2d
from voicekit.backends.vocoder_stages import cut as cut_vocoder
from voicekit.errors import VoiceError

SPLIT_VERSION = 5
"""2: meta carries the decoder shape; 3: and the 2-D vocoder; 4: kept blocked; 5: and
cut into stages (backends/vocoder_stages.py)."""
DP_NOISE = "noise_w"
PRIOR_NOISE = "noise"


@dataclass(frozen=True)
class SplitVoice:
    """Paths of the three graphs and the tensor names that join them."""

    folder: Path
    meta: dict[str, Any]

    @property
    def encoder(self) -> Path:
        return self.folder / "encoder.onnx"

    @property
    def flow(self) -> Path:
        return self.folder / "flow.onnx"

    @property
    def vocoder(self) -> Path:
        return self.folder / "vocoder.onnx"

    @property
    def vocoder_2d(self) -> Path | None:
        """The vocoder in 2-D convolutions (backends/conv2d.py), if this voice's could be."""
        return self.folder / "vocoder2d.onnx" if self.meta.get("vocoder_2d") else None

    @property
    def vocoder_stages(self) -> list[tuple[Path, int, int]]:
        """The 2-D vocoder cut at its upsamplings: (graph, radius, up) per stage, or []."""
        return [
            (self.folder / f"vocoder2d-stage{i}.onnx", radius, up)
            for i, (radius, up) in enumerate(self.meta.get("vocoder_stages", []))
        ]

    @property
    def deterministic(self) -> Path:
        """The whole voice with its noise as inputs (built on demand, for tests and bench)."""
        return self.folder / "whole.onnx"


def split_voice(
    model_path: Path, voice_hash: str, cache_root: Path, *, with_whole: bool = False
) -> SplitVoice:
    """The split graphs of a voice, from the cache or built now."""
    folder = cache_root / "split" / f"v{SPLIT_VERSION}-{voice_hash[:32]}"
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        cached = SplitVoice(folder, json.loads(meta_path.read_text()))
        if all(path.is_file() for path in _graphs(cached, with_whole)):
            return cached
        # a graph went missing from the cache (deleted by hand): build them all again
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
    try:
        meta = _build(model_path, tmp, with_whole=with_whole)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if folder.exists():  # another process won the race, or whole.onnx was missing
            shutil.rmtree(folder, ignore_errors=True)
        # A concurrent builder may have put it there first: theirs is as good.
        with contextlib.suppress(OSError):
            os.replace(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return SplitVoice(folder, json.loads(meta_path.read_text()))


def _graphs(split: SplitVoice, with_whole: bool) -> list[Path]:
    """The files a usable split holds."""
    graphs = [split.encoder, split.flow, split.vocoder]
    if split.vocoder_2d is not None:
        graphs.append(split.vocoder_2d)
    graphs += [path for path, _, _ in split.vocoder_stages]
    if with_whole:
        graphs.append(split.deterministic)
    return graphs


def _build(model_path: Path, out: Path, *, with_whole: bool) -> dict[str, Any]:
    import onnx

    try:
        model = onnx.load(str(model_path))
    except Exception as exc:  # onnx raises DecodeError and others for a broken file
        raise VoiceError(f"voice file {model_path} is not a readable ONNX model: {exc}") from exc
    # Inferred types name the cut's tensors; without them the split still works.
    with contextlib.suppress(Exception):
        model = onnx.shape_inference.infer_shapes(model)
    graph = model.graph
    random_nodes = [n for n in graph.node if n.op_type == "RandomNormalLike"]
    if len(random_nodes) != 2:
        raise VoiceError(
            f"{model_path.name} is not a Piper VITS voice "
            f"(expected 2 noise nodes, found {len(random_nodes)})"
        )
    dp_node = next((n for n in random_nodes if n.name.startswith("/dp/")), random_nodes[0])
    prior_node = next(n for n in random_nodes if n is not dp_node)
    prior_like = prior_node.input[0]

    decoder = asdict(decoder_shape_from_graph(graph))
    conv_pre = _find_conv_pre(graph)
    latents = conv_pre.input[0]
    channels = _initializer_shape(graph, conv_pre.input[1])[1]

    # Noise nodes become graph inputs.
    _replace_with_input(graph, dp_node, DP_NOISE, ["batch_size", 2, "phonemes"])
    _replace_with_input(graph, prior_node, PRIOR_NOISE, ["batch_size", channels, "frames"])

    producers = {out_name: node for node in graph.node for out_name in node.output}
    graph_inputs = {i.name for i in graph.input}
    initializers = {i.name for i in graph.initializer}

    encoder_nodes = _ancestors(producers, [prior_like], stop=set())
    flow_nodes = _ancestors(producers, [latents], stop=set()) - encoder_nodes
    vocoder_nodes = _ancestors(producers, [o.name for o in graph.output], stop={latents})

    def produced_by(nodes: set[int], tensor: str) -> bool:
        node = producers.get(tensor)
        return node is not None and id(node) in nodes

    def consumed(nodes: set[int]) -> list[str]:
        seen: list[str] = []
        for node in graph.node:
            if id(node) in nodes:
                for name in node.input:
                    if name and name not in seen and name not in initializers:
                        seen.append(name)
        return seen

    flow_needs = [t for t in consumed(flow_nodes) if not produced_by(flow_nodes, t)]
    vocoder_needs = [
        t for t in consumed(vocoder_nodes) if not produced_by(vocoder_nodes, t) and t != latents
    ]
    cut = [t for t in flow_needs + vocoder_needs if produced_by(encoder_nodes, t)]
    cut = list(dict.fromkeys(cut))
    latents_node = producers[latents]
    mask = next((t for t in latents_node.input if t in cut), None)
    if latents_node.op_type != "Mul" or mask is None:
        raise VoiceError(
            f"{model_path.name}: unexpected graph at the decoder input "
            f"({latents_node.op_type}); not a Piper VITS voice"
        )
    if prior_like not in cut:
        cut.append(prior_like)

    encoder_inputs = [t for t in consumed(encoder_nodes) if t in graph_inputs]
    flow_inputs = [t for t in flow_needs if t in cut or t in graph_inputs]
    vocoder_extra = [t for t in vocoder_needs if t in cut or t in graph_inputs]

    _save(model, encoder_nodes, encoder_inputs, cut, out / "encoder.onnx", "encoder")
    _save(model, flow_nodes, flow_inputs, [latents], out / "flow.onnx", "flow")
    vocoder_output = graph.output[0].name
    vocoder_model = _save(
        model,
        vocoder_nodes,
        [latents, *vocoder_extra],
        [vocoder_output],
        out / "vocoder.onnx",
        "vocoder",
    )
    wide, not_wide = as_conv2d(vocoder_model)
    stages: list[tuple[Any, int, int]] = []
    not_staged = not_wide
    if wide is not None:
        onnx.save(wide, str(out / "vocoder2d.onnx"))
        stages, not_staged = cut_vocoder(wide)
        for i, (stage, _, _) in enumerate(stages):
            onnx.save(stage, str(out / f"vocoder2d-stage{i}.onnx"))
    if with_whole:
        onnx.save(model, str(out / "whole.onnx"))
    return {
        "version": SPLIT_VERSION,
        "source": model_path.name,
        "channels": channels,
        "dp_noise": DP_NOISE,
        "prior_noise": PRIOR_NOISE,
        "prior_like": prior_like,
        "mask": mask,
        "latents": latents,
        "output": vocoder_output,
        "encoder_inputs": encoder_inputs,
        "encoder_outputs": cut,
        "flow_inputs": flow_inputs,
        "vocoder_extra": vocoder_extra,
        "decoder": decoder,
        "vocoder_2d": wide is not None,
        "vocoder_2d_note": not_wide,
        "vocoder_stages": [[radius, up] for _, radius, up in stages],
        "vocoder_stages_note": not_staged,
    }


def _find_conv_pre(graph: Any) -> Any:
    for node in graph.node:
        if node.op_type == "Conv" and (
            node.name == "/dec/conv_pre/Conv"
            or (len(node.input) > 1 and node.input[1] == "dec.conv_pre.weight")
        ):
            return node
    raise VoiceError("no decoder input found (/dec/conv_pre/Conv); not a Piper VITS voice")


def _initializer_shape(graph: Any, name: str) -> list[int]:
    for init in graph.initializer:
        if init.name == name:
            return list(init.dims)
    raise VoiceError(f"weight {name} missing from the voice graph")


def _replace_with_input(graph: Any, node: Any, name: str, shape: list[Any]) -> None:
    from onnx import TensorProto, helper

    old = node.output[0]
    for other in graph.node:
        for i, tensor in enumerate(other.input):
            if tensor == old:
                other.input[i] = name
    graph.node.remove(node)
    graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))


def _ancestors(producers: dict[str, Any], targets: list[str], stop: set[str]) -> set[int]:
    """ids of the nodes needed to compute ``targets``, not looking past ``stop``."""
    found: set[int] = set()
    stack = [t for t in targets if t not in stop]
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor in stop:
            continue
        seen.add(tensor)
        node = producers.get(tensor)
        if node is None or id(node) in found:
            continue
        found.add(id(node))
        stack.extend(t for t in node.input if t)
    return found


def _save(
    model: Any, node_ids: set[int], inputs: list[str], outputs: list[str], path: Path, name: str
) -> Any:
    from onnx import TensorProto, helper

    graph = model.graph
    nodes = [n for n in graph.node if id(n) in node_ids]
    used = {t for n in nodes for t in n.input}
    inits = [i for i in graph.initializer if i.name in used]
    infos = {v.name: v for v in [*graph.value_info, *graph.input, *graph.output]}

    def info(tensor: str) -> Any:
        if tensor in infos:
            return infos[tensor]
        return helper.make_tensor_value_info(tensor, TensorProto.FLOAT, None)

    sub = helper.make_graph(
        nodes, name, [info(t) for t in inputs], [info(t) for t in outputs], inits
    )
    sub_model = helper.make_model(
        sub,
        opset_imports=model.opset_import,
        ir_version=model.ir_version,
        producer_name="voicekit-split",
    )
    import onnx

    onnx.save(sub_model, str(path))
    return sub_model


@dataclass(frozen=True)
class DecoderShape:
    """What the vocoder's memory depends on, read from the voice graph."""

    channels: int
    """Latent channels (the decoder's input)."""
    hop: int
    """Product of the upsampling strides: audio samples per latent frame."""
    floats_per_frame: int
    """Peak live floats per latent frame (see the module formula)."""
    from_graph: bool = True
    """False when the graph did not look like a HiFi-GAN and defaults were used."""


# A Piper medium/high voice: 192 channels, ups 8-8-4 (or 8-8-2-2), last level 32 x 256, k=7.
DEFAULT_DECODER = DecoderShape(192, 256, (32 * 7 + 2 * 32) * 256, from_graph=False)


def decoder_shape_from_graph(graph: Any) -> DecoderShape:
    """Walk an ONNX graph's decoder convolutions (the splitter calls this once per voice)."""
    dims = {init.name: list(init.dims) for init in graph.initializer}
    upsample = 1
    channels = 0
    peak = 0
    for node in graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or len(node.input) < 2:
            continue
        if not (node.name.startswith("/dec/") or node.input[1].startswith("dec.")):
            continue
        weight = dims.get(node.input[1])
        if not weight or len(weight) != 3:
            continue
        attrs = {a.name: a for a in node.attribute}
        group = attrs["group"].i if "group" in attrs else 1
        kernel = weight[2]
        if node.op_type == "ConvTranspose":
            c_in, c_out = weight[0], weight[1] * group
            stride = next(iter(attrs["strides"].ints), 1) if "strides" in attrs else 1
            peak = max(
                peak, c_out * kernel * upsample + c_in * upsample + c_out * upsample * stride
            )
            upsample *= stride
        else:
            c_out, c_in = weight[0], weight[1] * group
            channels = channels or c_in  # conv_pre comes first: its input is the latent
            peak = max(peak, (c_in * kernel + 2 * c_out) * upsample)
    if not channels or upsample <= 1 or not peak:
        return DEFAULT_DECODER
    return DecoderShape(channels, upsample, peak)
