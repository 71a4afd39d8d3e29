"""The vocoder's 1-D convolutions rewritten as 2-D ones, for onnxruntime on the CPU.

onnxruntime's CPU provider runs a 1-D convolution as im2col and a matrix product,
but a 2-D one in its blocked-channel ("NCHWc") direct kernels. The HiFi-GAN decoder
is almost all convolutions, so the same weights over a ``[N, C, 1, T]`` tensor (every
kernel ``[1, k]``) run about 1.2x faster on one thread, at 116-121 dB SNR against the
1-D graph: the same arithmetic in another order (docs/BENCHMARKS.md, section 14.2).

The rewrite then keeps the residual stream in that blocked layout
(:func:`keep_blocked`): without it onnxruntime converts every tensor back and forth
around each pre-activation ``LeakyRelu`` and each residual ``Add``, which was a third
of the 2-D graph's time.

Only a graph this module understands is rewritten: convolutions with constant 3-D
weights, element-wise operations whose constants are scalars, and a final
``Unsqueeze`` (it keeps the samples' order, so it becomes an ``Identity``). Anything
else (a speaker input, a reshape, a constant with a shape) keeps the 1-D graph, and
:func:`as_conv2d` says why.
"""

from __future__ import annotations

from typing import Any

CONVS = frozenset({"Conv", "ConvTranspose"})
ELEMENTWISE = frozenset({"LeakyRelu", "Relu", "Tanh", "Sigmoid", "Add", "Sub", "Mul", "Div"})
"""Operations indifferent to an extra axis of size one, given scalar constants."""
SPATIAL = ("dilations", "strides", "kernel_shape", "output_padding")
AXIS = "voicekit_conv2d_axis"
BLOCK = 16
"""Channels per block of onnxruntime's blocked layout with AVX-512 (8 with AVX2): a
depthwise convolution joins the layout only if its channels are a multiple of it."""


def as_conv2d(model: Any, *, blocked: bool = True) -> tuple[Any | None, str]:
    """A copy of ``model`` (a single-input vocoder graph) in 2-D convolutions, or None
    and the reason it was left alone; ``blocked``: and kept in the blocked layout."""
    import onnx
    from onnx import helper, numpy_helper

    reason = _unsupported(model)
    if reason:
        return None, reason
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    source = graph.input[0].name
    wide = _widened(source)
    graph.initializer.append(numpy_helper.from_array(_int64([2]), AXIS))
    nodes = [helper.make_node("Unsqueeze", [source, AXIS], [wide], name="voicekit/as_2d")]
    for node in graph.node:
        node.input[:] = [wide if name == source else name for name in node.input]
        if node.op_type in CONVS:
            _widen_conv(node, weights[node.input[1]], numpy_helper)
        elif node.op_type == "Unsqueeze":  # [N, 1, T] -> [N, 1, 1, T]: already that shape
            node.op_type = "Identity"
            del node.input[1:]
            del node.attribute[:]
        nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.value_info[:]  # inferred 1-D shapes, now wrong
    if blocked:
        keep_blocked(graph, weights)
    out = graph.output[0]
    out.CopyFrom(
        helper.make_tensor_value_info(
            out.name, out.type.tensor_type.elem_type, ["batch", "channels", "one", "samples"]
        )
    )
    return model, ""


def keep_blocked(graph: Any, weights: dict[str, Any]) -> None:
    """Let onnxruntime keep the 2-D graph in its blocked-channel layout end to end.

    Two things send its tensors back to plain NCHW, each conversion a copy of a
    tensor as long as the audio:

    * A ``LeakyRelu`` that is not alone behind a convolution (HiFi-GAN's
      pre-activation, whose input also feeds the residual ``Add``) has no blocked
      kernel; a convolution with that activation fused does. So it gets an identity
      depthwise 1x1 convolution in front (weights 1, no bias: exact), which
      onnxruntime fuses with it. A transposed convolution's output gets one too, so
      the residual stream enters the layout once, where it starts.
    * An ``Add`` is folded into the convolution before it only if onnxruntime can
      prove both inputs the same shape, which it cannot through a dilated
      convolution. Every tensor's time axis is therefore named (``value_info``),
      with the same name wherever a convolution keeps the length.

    The audio is the same up to rounding: the residual sums happen inside the
    convolutions, in another order.
    """
    from onnx import TensorProto, helper, numpy_helper

    channels, times = _channels_and_times(graph, weights)
    uses: dict[str, int] = {}
    for node in graph.node:
        for name in node.input:
            uses[name] = uses.get(name, 0) + 1
    nodes: list[Any] = []

    def identity(source: str, out: str) -> Any:
        count = channels[source]
        weight = f"{out}/identity_w"
        graph.initializer.append(numpy_helper.from_array(_ones(count), weight))
        channels[out], times[out] = count, times.get(source)
        return helper.make_node(
            "Conv", [source, weight], [out], group=count, kernel_shape=[1, 1],
            name=f"voicekit/identity{len(nodes)}",
        )  # fmt: skip

    for node in graph.node:
        source = node.input[0] if node.input else ""
        # alone behind a convolution, onnxruntime fuses it already
        if node.op_type == "LeakyRelu" and uses[source] > 1 and _blockable(channels.get(source)):
            fed = f"{source}/for_{node.name or len(nodes)}"
            nodes.append(identity(source, fed))
            node.input[0] = fed
        nodes.append(node)
        if node.op_type == "ConvTranspose" and _blockable(channels.get(node.output[0])):
            out, raw = node.output[0], f"{node.output[0]}/raw"
            channels[raw], times[raw] = channels[out], times.get(out)
            node.output[0] = raw
            nodes.append(identity(raw, out))
    del graph.node[:]
    graph.node.extend(nodes)
    outputs = {o.name for o in graph.output}
    source = graph.input[0]
    dims = source.type.tensor_type.shape.dim
    if len(dims) == 3:
        dims[0].dim_param, dims[2].dim_param = "batch", times[source.name]
    for name, time in times.items():
        if time and name in channels and name not in outputs and name != source.name:
            graph.value_info.append(
                helper.make_tensor_value_info(
                    name, TensorProto.FLOAT, ["batch", channels[name], 1, time]
                )
            )


def _channels_and_times(
    graph: Any, weights: dict[str, Any]
) -> tuple[dict[str, int], dict[str, str | None]]:
    """Each tensor's channel count and the name of its time axis (None: unknown)."""
    from onnx import helper

    source = graph.input[0].name
    dims = graph.input[0].type.tensor_type.shape.dim
    channels: dict[str, int] = {}
    if len(dims) == 3 and dims[1].dim_value:
        channels[source] = dims[1].dim_value
    times: dict[str, str | None] = {source: "frames", _widened(source): "frames"}
    if source in channels:
        channels[_widened(source)] = channels[source]
    for node in graph.node:
        out = node.output[0]
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        given = next((times[i] for i in node.input if times.get(i)), None)
        if node.op_type == "Conv":
            weight = weights[node.input[1]]
            channels[out] = weight.dims[0]
            width, dilation = weight.dims[-1], attrs.get("dilations", [1, 1])[-1]
            pads = attrs.get("pads", [0, 0, 0, 0])
            stride = attrs.get("strides", [1, 1])[-1]
            same = stride == 1 and pads[1] + pads[3] == dilation * (width - 1)
            times[out] = given if same else None
        elif node.op_type == "ConvTranspose":
            weight = weights[node.input[1]]
            channels[out] = weight.dims[1] * attrs.get("group", 1)
            stride, width = attrs.get("strides", [1, 1])[-1], weight.dims[-1]
            pads = attrs.get("pads", [0, 0, 0, 0])
            exact = width - pads[1] - pads[3] == stride and not any(attrs.get("output_padding", []))
            times[out] = f"{given}*{stride}" if given and exact else None
        elif node.op_type in ELEMENTWISE:
            known = [channels[i] for i in node.input if i in channels]
            if known:
                channels[out] = known[0]
            named = {times.get(i) for i in node.input if i in channels}
            times[out] = named.pop() if len(named) == 1 else None
    return channels, times


def _widened(source: str) -> str:
    """The name of the graph input with its extra axis (the first node's output)."""
    return f"{source}/as_2d"


def _blockable(count: int | None) -> bool:
    return count is not None and count % BLOCK == 0


def _ones(count: int) -> Any:
    import numpy as np

    return np.ones((count, 1, 1, 1), dtype=np.float32)


def _unsupported(model: Any) -> str:
    from onnx import numpy_helper

    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    if len(graph.input) != 1:
        return f"{len(graph.input)} inputs (a speaker input is not rewritten)"
    if len(graph.output) != 1:
        return f"{len(graph.output)} outputs"
    produced = {name for node in graph.node for name in node.output}
    for node in graph.node:
        op = node.op_type
        if op in CONVS:
            weight = weights.get(node.input[1]) if len(node.input) > 1 else None
            if weight is None or len(weight.dims) != 3:
                return f"{node.name or op}: weights that are not a constant 3-D tensor"
        elif op == "Unsqueeze":
            if node.output[0] != graph.output[0].name:
                return f"{node.name or op}: an Unsqueeze inside the graph"
        elif op not in ELEMENTWISE:
            return f"{node.name or op}: operation {op}"
        else:
            for name in node.input:
                if name in weights and numpy_helper.to_array(weights[name]).size != 1:
                    return f"{node.name or op}: a constant that is not a scalar"
                if name not in weights and name not in produced and name != graph.input[0].name:
                    return f"{node.name or op}: input {name} from nowhere"
    if graph.node and graph.node[-1].op_type != "Unsqueeze":
        return "the output is not made by a final Unsqueeze"
    return ""


def _widen_conv(node: Any, weight: Any, numpy_helper: Any) -> None:
    """A 1-D convolution in place as its 2-D twin over ``[N, C, 1, T]``."""
    kernel = numpy_helper.to_array(weight)
    out, cin, width = kernel.shape
    weight.CopyFrom(numpy_helper.from_array(kernel.reshape(out, cin, 1, width), weight.name))
    for attr in node.attribute:
        if attr.name in SPATIAL:
            attr.ints[:] = [0 if attr.name == "output_padding" else 1, *attr.ints]
        elif attr.name == "pads":
            begin, end = attr.ints
            attr.ints[:] = [0, begin, 0, end]


def _int64(values: list[int]) -> Any:
    import numpy as np

    return np.asarray(values, dtype=np.int64)
