"""micronet::separable_conv (csrc/separable.cpp) equals the pair of convolutions it computes,
F.conv2d k x 1 then F.conv2d 1 x k (BN folded, float64 reference), within float32 rounding
(1e-5 relative): MicroNet M3's depthwise pairs and stem at 224 x 224, the stride-1 versions,
odd and tiny planes (smaller than the kernel), channel multipliers, ReLU6 and the output
permutation; bad inputs raise naming the problem; and deploy.MergedSeparableConv running the
op equals its PyTorch fallback."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from micronet_backbones import kernels
from micronet_backbones.deploy import MergedSeparableConv
from micronet_backbones.ops import ChannelShuffle, MicroFactorizedDepthwise

RTOL = 1e-5


@pytest.fixture(autouse=True)
def require_op() -> None:
    """Skip without the native kernels or with an extension built before the op."""
    if not kernels.native_available():
        pytest.skip(f"native kernels not built: {kernels.status().reason}")
    if not hasattr(torch.ops.micronet, "separable_conv"):
        pytest.skip("the native kernels have no micronet::separable_conv")


@torch.no_grad()
def randomize(module: nn.Module, seed: int = 0) -> nn.Module:
    """Random eval statistics and affine parameters of every BatchNorm (non-zero intermediate
    bias: the pair's zero padding matters), in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            bn.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            bn.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            bn.weight.copy_(torch.rand(n, generator=generator) * 0.8 + 0.6)
            bn.bias.copy_(torch.randn(n, generator=generator) * 0.2)
    return module.eval()


def random_pair(in_channels, mid, out, groups1, k, seed=0):
    """Folded weights and biases at the scales of trained, BN-folded layers."""
    generator = torch.Generator().manual_seed(seed)
    per_group = in_channels // groups1
    weight1 = torch.randn(mid, per_group, k, generator=generator) / (per_group * k) ** 0.5
    weight2 = torch.randn(out, k, generator=generator) / k**0.5
    bias1 = torch.randn(mid, generator=generator) * 0.3
    bias2 = torch.randn(out, generator=generator) * 0.3
    return weight1, bias1, weight2, bias2


def reference(x, weight1, bias1, weight2, bias2, groups1, stride, padding, relu6, index):
    """The two convolutions in float64."""
    mid, per_group, k = weight1.shape
    t = F.conv2d(
        x.double(), weight1.double().view(mid, per_group, k, 1), bias1.double(),
        (stride, 1), (padding, 0), 1, groups1,
    )  # fmt: skip
    y = F.conv2d(
        t, weight2.double().view(-1, 1, 1, k), bias2.double(), (1, stride), (0, padding), 1, mid
    )
    if relu6:
        y = y.clamp(0.0, 6.0)
    return y if index is None else y[:, index]


def check(
    batch, in_channels, mid, out, size, k, stride, groups1, relu6=False, permute=False, seed=0
):
    h, w = size
    torch.manual_seed(seed)
    x = torch.randn(batch, in_channels, h, w)
    weight1, bias1, weight2, bias2 = random_pair(in_channels, mid, out, groups1, k, seed)
    index = torch.randperm(out) if permute else None
    args = (weight1, bias1, weight2, bias2, groups1, stride, k // 2, relu6, index)
    actual = torch.ops.micronet.separable_conv(x, *args)
    expected = reference(x, *args).float()
    assert actual.shape == expected.shape and actual.is_contiguous()
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=RTOL * scale)


# M3 at 224 x 224: (in, mid, out, H = W, k, stride, groups1); the first row is the stem.
M3_PAIRS = [
    (3, 4, 12, 224, 3, 2, 1),
    (12, 24, 48, 112, 3, 2, 12),
    (16, 32, 64, 56, 3, 2, 16),
    (24, 48, 96, 28, 3, 1, 24),
    (144, 144, 144, 28, 5, 2, 144),
    (192, 192, 192, 14, 5, 1, 192),
    (384, 384, 384, 14, 5, 1, 384),
    (480, 480, 480, 14, 5, 1, 480),
    (480, 480, 480, 14, 5, 2, 480),
    (720, 720, 720, 7, 5, 1, 720),
    (720, 720, 720, 7, 3, 1, 720),
]


@pytest.mark.parametrize("in_channels, mid, out, size, k, stride, groups1", M3_PAIRS)
def test_m3_layers(in_channels, mid, out, size, k, stride, groups1):
    stem = groups1 == 1
    check(2, in_channels, mid, out, (size, size), k, stride, groups1, relu6=stem, permute=stem)


@pytest.mark.parametrize("in_channels, mid, out, size, k, stride, groups1", M3_PAIRS)
def test_m3_layers_at_stride_1(in_channels, mid, out, size, k, stride, groups1):
    """The output-stride-16 models run the same pairs at stride 1 (half-size planes here)."""
    check(1, in_channels, mid, out, (size // 2 + 1, size // 2), k, 1, groups1)


# Planes that end mid-vector, span fewer rows than the kernel, or a single row / column.
SIZES = [(7, 9), (9, 7), (1, 1), (2, 3), (3, 2), (1, 17), (17, 1), (5, 5), (31, 33), (4, 40)]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("multipliers", [(1, 1), (2, 1), (1, 2), (2, 2)])
def test_depthwise_pairs_on_odd_sizes(size, k, stride, multipliers):
    m1, m2 = multipliers
    check(2, 6, 6 * m1, 6 * m1 * m2, size, k, stride, 6, relu6=m1 == m2, permute=m1 > m2)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("k, stride", [(3, 2), (3, 1), (5, 2)])
def test_stem_like_pairs_on_odd_sizes(size, k, stride):
    """groups1 = 1 (the stem: every mid channel reads all inputs) and 2 groups, m2 = 3 / 4."""
    check(2, 3, 4, 12, size, k, stride, 1, relu6=True, permute=True)
    check(2, 4, 4, 16, size, k, stride, 2)


@pytest.mark.parametrize("size", [(9, 65), (6, 47), (5, 32), (3, 96)])
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("widths", [(2, 6, 12, 2), (3, 5, 5, 1), (4, 8, 24, 2)])
def test_stride_2_wide_planes(size, k, widths):
    """Stride 2 on planes 32 columns wide or more (both passes in registers, up to four mid
    channels of a group at a time): 3 and 5 mid channels a group, 1 to 3 inputs."""
    in_channels, mid, out, groups1 = widths
    check(1, in_channels, mid, out, size, k, 2, groups1, relu6=k == 3, permute=True)


@pytest.mark.parametrize("k, stride, padding", [(3, 1, 0), (3, 2, 0), (4, 1, 1), (7, 2, 3)])
def test_other_geometries(k, stride, padding):
    """Outside MicroNet's (the generic path): even k, other paddings."""
    x = torch.randn(2, 6, 13, 11)
    weight1, bias1, weight2, bias2 = random_pair(6, 12, 24, 6, k)
    args = (weight1, bias1, weight2, bias2, 6, stride, padding, True, None)
    expected = reference(x, *args).float()
    actual = torch.ops.micronet.separable_conv(x, *args)
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=RTOL * expected.abs().max())


def test_accepts_the_conv_weight_shapes_and_noncontiguous_input():
    x = torch.randn(2, 8, 12, 10).transpose(2, 3)
    weight1, bias1, weight2, bias2 = random_pair(8, 8, 16, 8, 5)
    args = (bias1, weight2, bias2, 8, 2, 2, False, None)
    as_pairs = torch.ops.micronet.separable_conv(x, weight1, *args)
    as_convs = torch.ops.micronet.separable_conv(
        x, weight1[..., None], bias1, weight2[:, None, None], bias2, 8, 2, 2, False, None
    )
    assert torch.equal(as_pairs, as_convs)
    expected = reference(x, weight1, *args).float()
    torch.testing.assert_close(as_pairs, expected, rtol=RTOL, atol=RTOL * expected.abs().max())


def test_bad_inputs_raise():
    x = torch.randn(1, 4, 8, 8)
    weight1, bias1, weight2, bias2 = random_pair(4, 4, 8, 4, 3)
    op = torch.ops.micronet.separable_conv
    with pytest.raises(RuntimeError, match="weight1"):
        op(x, weight1[:, :, :, None, None], bias1, weight2, bias2, 4, 1, 1, False, None)
    with pytest.raises(RuntimeError, match="weight1"):
        op(x, weight1, bias1, weight2, bias2, 2, 1, 1, False, None)  # I / groups1 = 2, not 1
    with pytest.raises(RuntimeError, match="weight2"):
        op(x, weight1, bias1, weight2[:, None], bias2, 4, 1, 1, False, None)
    with pytest.raises(RuntimeError, match="k = "):
        op(x, weight1, bias1, weight2[:, :2], bias2, 4, 1, 1, False, None)
    with pytest.raises(RuntimeError, match="bias1"):
        op(x, weight1, bias1[:3], weight2, bias2, 4, 1, 1, False, None)
    with pytest.raises(RuntimeError, match="bias2"):
        op(x, weight1, bias1, weight2, bias2.double(), 4, 1, 1, False, None)
    with pytest.raises(RuntimeError, match="groups1"):
        op(x, weight1, bias1, weight2, bias2, 3, 1, 1, False, None)
    with pytest.raises(RuntimeError, match="x must be"):
        op(x.double(), weight1, bias1, weight2, bias2, 4, 1, 1, False, None)
    with pytest.raises(RuntimeError, match="permutation"):
        op(x, weight1, bias1, weight2, bias2, 4, 1, 1, False, torch.zeros(8, dtype=torch.long))
    with pytest.raises(RuntimeError, match="output_index"):
        op(x, weight1, bias1, weight2, bias2, 4, 1, 1, False, torch.arange(7))
    with pytest.raises(RuntimeError, match="too small"):
        op(x[..., :1], weight1, bias1, weight2, bias2, 4, 1, 0, False, None)


def fallback_and_native(module: MergedSeparableConv, x: torch.Tensor):
    with torch.no_grad():
        with kernels.pytorch_fallback():
            expected = module(x)
        actual = module(x)
    return actual, expected


@pytest.mark.parametrize("expansion", [(1, 1), (2, 2), (1, 3)])
@pytest.mark.parametrize("kernel_size, stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("size", [(11, 16), (14, 14), (7, 5)])
def test_merged_depthwise_pair_runs_the_op(expansion, kernel_size, stride, size):
    layer = randomize(MicroFactorizedDepthwise(6, kernel_size, stride, expansion))
    merged = MergedSeparableConv(layer.conv_kx1, layer.bn_kx1, layer.conv_1xk, layer.bn_1xk)
    merged.absorb_input_permutation(torch.randperm(6))  # permuted pair weights
    x = torch.randn(2, 6, *size)
    actual, expected = fallback_and_native(merged, x)
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=RTOL * expected.abs().max())
    params = merged.native_params()
    assert params["output_index"] is None and params["groups1"] == 6
    direct = torch.ops.micronet.separable_conv(
        x, params["weight1"], params["bias1"], params["weight2"], params["bias2"],
        params["groups1"], params["stride"], params["padding"], False, None,
    )  # fmt: skip
    assert torch.equal(direct, actual)


def test_merged_stem_runs_the_op_with_its_permutation():
    first = nn.Conv2d(3, 4, (3, 1), (2, 1), (1, 0), bias=False)
    second = nn.Conv2d(4, 12, (1, 3), (1, 2), (0, 1), groups=4, bias=False)
    bn1, bn2 = nn.BatchNorm2d(4), nn.BatchNorm2d(12)
    randomize(nn.Sequential(bn1, bn2))
    index = ChannelShuffle(4).permutation(12)
    merged = MergedSeparableConv(first, bn1, second, bn2, output_index=index)
    x = torch.randn(2, 3, 31, 40)
    actual, expected = fallback_and_native(merged, x)
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=RTOL * expected.abs().max())
    params = merged.native_params()
    assert torch.equal(params["output_index"], index)
    assert params["weight1"].shape == (4, 3, 3) and params["weight2"].shape == (12, 3)
    assert all(params[name].is_contiguous() for name in ("weight1", "bias1", "weight2", "bias2"))


def test_module_takes_the_fallback_for_float64():
    layer = randomize(MicroFactorizedDepthwise(4, 5, 2, (2, 1))).double()
    merged = MergedSeparableConv(layer.conv_kx1, layer.bn_kx1, layer.conv_1xk, layer.bn_1xk)
    x = torch.randn(1, 4, 9, 13, dtype=torch.float64)
    with torch.no_grad():
        assert (merged(x) - layer(x)).abs().max() < 1e-12
