"""The vocoder's 1-D convolutions rewritten as 2-D ones, for onnxruntime on the CPU.

onnxruntime's CPU provider runs a 1-D convolution as im2col and a matrix product,
but a 2-D one in its blocked-channel ("NCHWc") direct kernels. The HiFi-GAN decoder
is almost all convolutions, so the same weights over a ``[N, C, 1, T]`` tensor (every
kernel ``[1, k]``) run about 1.2x faster on one thread, at 116-121 dB SNR against the
1-D graph: the same arithmetic in another order (docs/BENCHMARKS.md, section 14.2).

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


def as_conv2d(model: Any) -> tuple[Any | None, str]:
    """A copy of ``model`` (a single-input vocoder graph) in 2-D convolutions, or None
    and the reason it was left alone."""
    import onnx
    from onnx import helper, numpy_helper

    reason = _unsupported(model)
    if reason:
        return None, reason
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    weights = {i.name: i for i in graph.initializer}
    source = graph.input[0].name
    wide = f"{source}/as_2d"
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
    out = graph.output[0]
    out.CopyFrom(
        helper.make_tensor_value_info(
            out.name, out.type.tensor_type.elem_type, ["batch", "channels", "one", "samples"]
        )
    )
    return model, ""


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
