"""micronet::grouped_pointwise (grouped 1x1 conv, bias, ReLU6, output permutation, residual)
equals PyTorch's grouped conv within float32 rounding, rejects bad input, and runs
deploy.FusedPointwise in eager float32 CPU calls."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from kernel_helpers import OpLog
from torch import nn

from micronet_backbones import kernels
from micronet_backbones.deploy.pointwise import FusedPointwise


def _op_available() -> bool:
    return kernels.native_available() and hasattr(torch.ops.micronet, "grouped_pointwise")


pytestmark = pytest.mark.skipif(
    not _op_available(),
    reason=f"micronet::grouped_pointwise unavailable ({kernels.status().backend} kernels: "
    f"{kernels.status().reason})",
)

# MicroNet-M3's pointwise layers: (in, out, groups, H = W).
M3_LAYERS = [
    (48, 16, 4, 56),
    (64, 24, 4, 28),
    (96, 24, 4, 28),
    (24, 144, 6, 28),
    (144, 32, 4, 14),
    (32, 192, 8, 14),
    (192, 32, 4, 14),
    (192, 64, 8, 14),
    (64, 384, 8, 14),
    (384, 80, 8, 14),
    (80, 480, 10, 14),
    (480, 80, 8, 14),
    (480, 120, 10, 7),
    (120, 720, 12, 7),
    (720, 120, 10, 7),
    (720, 144, 12, 7),
    (144, 864, 12, 7),
]
# Odd plane sizes (vector tails, planes narrower than a vector) with several group shapes.
ODD_LAYERS = [
    (c_in, c_out, g, (hw, 1))
    for hw in (1, 7, 15, 17, 33)
    for c_in, c_out, g in ((12, 20, 2), (24, 144, 6), (720, 120, 10), (9, 7, 1), (16, 16, 16))
]
OPTIONS = [(relu6, permute, residual) for relu6 in (False, True) for permute in (False, True)
           for residual in (False, True)]  # fmt: skip


def reference(x, weight, bias, groups, relu6, index, residual):
    """PyTorch: grouped 1x1 conv + bias, clamp, permutation, residual."""
    out_channels = bias.numel()
    y = F.conv2d(x, weight.reshape(out_channels, -1, 1, 1), bias.reshape(-1), groups=groups)
    if relu6:
        y = y.clamp(0, 6)
    if index is not None:
        y = y[:, index]
    if residual is not None:
        y = y + residual
    return y


def make_case(c_in, c_out, groups, size, seed=0):
    """x (2, I, H, W), weight (G, O/G, I/G), bias (O,), a permutation and a residual; values
    with magnitudes like MicroNet's activations (ReLU6 clips some)."""
    generator = torch.Generator().manual_seed(seed)
    h, w = size
    x = torch.randn(2, c_in, h, w, generator=generator) * 2
    fan_in = c_in // groups
    weight = torch.randn(groups, c_out // groups, fan_in, generator=generator) / fan_in**0.5
    bias = torch.randn(c_out, generator=generator)
    index = torch.randperm(c_out, generator=generator)
    residual = torch.randn(2, c_out, h, w, generator=generator)
    return x, weight, bias, index, residual


def check(c_in, c_out, groups, size, relu6, permute, with_residual):
    x, weight, bias, index, residual = make_case(c_in, c_out, groups, size)
    index = index if permute else None
    residual = residual if with_residual else None
    actual = torch.ops.micronet.grouped_pointwise(x, weight, bias, relu6, index, residual)
    expected = reference(x, weight, bias, groups, relu6, index, residual)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


@pytest.mark.parametrize(("relu6", "permute", "residual"), OPTIONS)
@pytest.mark.parametrize(("c_in", "c_out", "groups", "hw"), M3_LAYERS)
def test_m3_layers_equal_the_grouped_conv(c_in, c_out, groups, hw, relu6, permute, residual):
    check(c_in, c_out, groups, (hw, hw), relu6, permute, residual)


@pytest.mark.parametrize(("relu6", "permute", "residual"), OPTIONS)
@pytest.mark.parametrize(("c_in", "c_out", "groups", "size"), ODD_LAYERS)
def test_odd_plane_sizes(c_in, c_out, groups, size, relu6, permute, residual):
    check(c_in, c_out, groups, size, relu6, permute, residual)


def test_conv_weight_layout_and_strided_input():
    """weight (O, I/G, 1, 1) with groups inferred from x, bias (G, O/G, 1), and a
    non-contiguous x (channels last) give the same result."""
    x, weight, bias, _, _ = make_case(48, 36, 6, (9, 11))
    expected = reference(x, weight, bias, 6, True, None, None)
    conv_weight = weight.reshape(36, 8, 1, 1)
    x_cl = x.to(memory_format=torch.channels_last)
    actual = torch.ops.micronet.grouped_pointwise(x_cl, conv_weight, bias.view(6, 6, 1), True,
                                                  None, None)  # fmt: skip
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def test_nan_stays_nan_through_relu6():
    x, weight, bias, _, _ = make_case(8, 32, 2, (5, 7))
    x[0, 0, 2, 3] = float("nan")  # feeds outputs of group 0 at that pixel
    actual = torch.ops.micronet.grouped_pointwise(x, weight, bias, True, None, None)
    expected = reference(x, weight, bias, 2, True, None, None)
    assert torch.isnan(actual[0, :16, 2, 3]).all()
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * 6, equal_nan=True)


def test_fake_kernel_and_schema():
    x, weight, bias, index, residual = make_case(24, 48, 4, (6, 6))
    torch.library.opcheck(
        torch.ops.micronet.grouped_pointwise.default,
        (x, weight, bias, True, index, residual),
        test_utils=("test_schema", "test_faketensor"),
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: {**a, "x": a["x"].double()}, "x must be a float32 CPU tensor"),
        (lambda a: {**a, "x": a["x"][0]}, r"x must be \(N, I, H, W\)"),
        (lambda a: {**a, "weight": a["weight"][:, :, :5]}, "weight must be"),
        (lambda a: {**a, "weight": a["weight"].reshape(-1, 6)}, "weight must be"),
        (lambda a: {**a, "bias": a["bias"][:-1]}, "bias must have 48 elements"),
        (lambda a: {**a, "index": torch.zeros(48, dtype=torch.long)}, "not a permutation"),
        (lambda a: {**a, "index": torch.arange(48) + 1}, "outside"),
        (lambda a: {**a, "index": torch.arange(48, dtype=torch.int32)}, "output_index must be"),
        (lambda a: {**a, "residual": a["residual"][:, :40]}, "residual must be"),
    ],
)
def test_bad_input_is_rejected(change, message):
    x, weight, bias, index, residual = make_case(24, 48, 4, (6, 6))
    args = change({"x": x, "weight": weight, "bias": bias, "index": index, "residual": residual})
    with pytest.raises(RuntimeError, match=message):
        torch.ops.micronet.grouped_pointwise(
            args["x"], args["weight"], args["bias"], False, args["index"], args["residual"]
        )


def fused_pointwise(c_in, c_out, groups, seed=0) -> FusedPointwise:
    torch.manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, 1, groups=groups, bias=False)
    bn = nn.BatchNorm2d(c_out).eval()
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.weight.data.normal_()
    bn.bias.data.normal_()
    return FusedPointwise(conv, bn)


@pytest.mark.parametrize(("c_in", "c_out", "groups", "size"),
                         [(120, 720, 12, (7, 7)), (480, 80, 8, (14, 14)), (24, 144, 6, (9, 5))])  # fmt: skip
@pytest.mark.parametrize("batch", [1, 2])
def test_fused_pointwise_native_equals_fallback(c_in, c_out, groups, size, batch):
    module = fused_pointwise(c_in, c_out, groups)
    x = torch.randn(batch, c_in, *size)
    with torch.no_grad(), kernels.pytorch_fallback(), OpLog() as fallback_log:
        expected = module(x)
    with torch.no_grad(), OpLog() as log:
        actual = module(x)
    assert "micronet::grouped_pointwise" in log.names
    assert "micronet::grouped_pointwise" not in fallback_log.names
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def test_fused_pointwise_native_params():
    module = fused_pointwise(80, 480, 10)
    params = module.native_params()
    assert params["groups"] == 10
    assert params["weight"].shape == (480, 8) and params["weight"].is_contiguous()
    assert params["bias"].shape == (480,)
    x = torch.randn(1, 80, 7, 7)
    actual = torch.ops.micronet.grouped_pointwise(
        x, params["weight"].view(480, 8, 1, 1), params["bias"], False, None, None
    )
    with torch.no_grad(), kernels.pytorch_fallback():
        expected = module(x)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5 * expected.abs().max())


def test_fused_pointwise_keeps_the_fallback_when_gradients_are_wanted():
    module = fused_pointwise(16, 32, 4)
    x = torch.randn(1, 16, 5, 5, requires_grad=True)
    with OpLog() as log:
        y = module(x)
    assert "micronet::grouped_pointwise" not in log.names
    assert y.requires_grad
