"""Convolutions padded as the ONNX graph pads them, asymmetric pads included."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from torch.nn import functional as F  # noqa: E402

from voicekit.backends.torch.layers import Conv, ConvT  # noqa: E402
from voicekit.backends.torch.weights import ConvSpec  # noqa: E402


@pytest.mark.parametrize("pads", [(1, 1), (2, 0), (0, 3)])
def test_conv_pads_each_side_as_the_graph_says(pads: tuple[int, int]) -> None:
    torch.manual_seed(0)
    conv = Conv(2, 3, ConvSpec(3, dilation=2, pads=pads))
    x = torch.randn(1, 2, 20)
    expected = F.conv1d(F.pad(x, pads), conv.weight, conv.bias, dilation=2)
    with torch.inference_mode():
        assert torch.allclose(conv(x), expected, atol=1e-6)


@pytest.mark.parametrize("pads", [(1, 1), (1, 2), (3, 0)])
def test_transposed_conv_crops_each_side_as_the_graph_says(pads: tuple[int, int]) -> None:
    torch.manual_seed(0)
    conv = ConvT(2, 3, ConvSpec(4, stride=2, pads=pads, transposed=True))
    x = torch.randn(1, 2, 10)
    full = F.conv_transpose1d(x, conv.weight, conv.bias, stride=2)
    with torch.inference_mode():
        assert torch.allclose(conv(x), full[..., pads[0] : full.shape[-1] - pads[1]], atol=1e-6)
