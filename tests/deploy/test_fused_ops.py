"""The fused operators, one by one, against the core layers they replace."""

from __future__ import annotations

import pytest
import torch
from deploy_helpers import TOLERANCE, randomize, relative_error
from torch import nn

from micronet_backbones import BlockSpec, block_from_spec
from micronet_backbones.deploy import (
    ChannelPermutation,
    FusedPointwise,
    FusedShiftMax,
    MergedSeparableConv,
    fuse_block,
)
from micronet_backbones.deploy.folding import merge_separable
from micronet_backbones.ops import (
    ChannelShuffle,
    DynamicShiftMax,
    GroupedPointwise,
    MicroFactorizedDepthwise,
)


@pytest.mark.parametrize("expansion", [(1, 1), (2, 2), (1, 3)])
@pytest.mark.parametrize("kernel_size,stride", [(3, 1), (3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("width", [16, 17, 5])
def test_merged_depthwise_pair(expansion, kernel_size, stride, width):
    layer = randomize(MicroFactorizedDepthwise(6, kernel_size, stride, expansion))
    merged = MergedSeparableConv(layer.conv_kx1, layer.bn_kx1, layer.conv_1xk, layer.bn_1xk)
    x = torch.randn(2, 6, 11, width)
    with torch.no_grad():
        expected, actual = layer(x), merged(x)
    assert actual.shape == expected.shape
    assert relative_error(actual, expected) < TOLERANCE


def test_merged_depthwise_pair_is_exact_in_float64():
    layer = randomize(MicroFactorizedDepthwise(4, 5, 2, (2, 1))).double()
    merged = MergedSeparableConv(layer.conv_kx1, layer.bn_kx1, layer.conv_1xk, layer.bn_1xk)
    x = torch.randn(1, 4, 9, 13, dtype=torch.float64)
    with torch.no_grad():
        assert relative_error(merged(x), layer(x)) < 1e-13


def test_border_columns_need_the_correction():
    """Without the column correction the border columns would be wrong: the test above is
    sensitive to it (the intermediate BN bias is non-zero)."""
    layer = randomize(MicroFactorizedDepthwise(3, 3, 1))
    merged = MergedSeparableConv(layer.conv_kx1, layer.bn_kx1, layer.conv_1xk, layer.bn_1xk)
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        plain = torch.nn.functional.conv2d(x, merged.weight, merged.bias, 1, 1, 1, 3)
        expected = layer(x)
    assert relative_error(plain[..., 1:-1], expected[..., 1:-1]) < TOLERANCE
    assert relative_error(plain, expected) > 1e-3


def test_stem_like_pair_with_output_permutation():
    first = nn.Conv2d(3, 4, (3, 1), (2, 1), (1, 0), bias=False)
    second = nn.Conv2d(4, 12, (1, 3), (1, 2), (0, 1), groups=4, bias=False)
    bn1, bn2 = nn.BatchNorm2d(4), nn.BatchNorm2d(12)
    randomize(nn.Sequential(bn1, bn2))
    index = ChannelShuffle(4).permutation(12)
    merged = MergedSeparableConv(first, bn1, second, bn2, output_index=index)
    x = torch.randn(2, 3, 15, 20)
    with torch.no_grad():
        expected = bn2(second(bn1(first(x))))[:, index]
        assert relative_error(merged(x), expected) < TOLERANCE


def test_merge_rejects_what_it_cannot_merge():
    first = nn.Conv2d(4, 4, (3, 1), padding=(1, 0), groups=4, bias=False)
    not_depthwise = nn.Conv2d(4, 4, (1, 3), padding=(0, 1), bias=False)
    with pytest.raises(ValueError, match="depthwise"):
        merge_separable(first, nn.Identity(), not_depthwise, nn.Identity())
    dilated = nn.Conv2d(4, 4, (1, 3), padding=(0, 2), dilation=2, groups=4, bias=False)
    with pytest.raises(ValueError, match="dilated"):
        merge_separable(first, nn.Identity(), dilated, nn.Identity())
    second = nn.Conv2d(4, 4, (1, 3), padding=(0, 1), groups=4, bias=False)
    with pytest.raises(TypeError, match="BatchNorm"):
        merge_separable(first, nn.ReLU(), second, nn.Identity())


@pytest.mark.parametrize("groups", [1, 4])
@pytest.mark.parametrize("batch", [1, 3])
def test_pointwise(groups, batch):
    layer = randomize(GroupedPointwise(16, 24, groups))
    fused = FusedPointwise(layer.conv, layer.bn)
    x = torch.randn(batch, 16, 7, 9)
    with torch.no_grad():
        assert relative_error(fused(x), layer(x)) < TOLERANCE


def _composed(channels, *groups):
    index = torch.arange(channels)
    for g in groups:
        index = index[ChannelShuffle(g).permutation(channels)]
    return index


@pytest.mark.parametrize(
    "index",
    [_composed(48, 12, 24), _composed(144, 6, 72), _composed(32, 4), _composed(30, 5, 3, 2)],
)
def test_axis_permutations_are_written_in_one_pass(index):
    permutation = ChannelPermutation(index)
    assert permutation.dims is not None, "shuffles and their compositions are axis permutations"
    x, r = torch.randn(2, index.numel(), 4, 5), torch.randn(2, index.numel(), 4, 5)
    a = torch.randn(2, index.numel(), 1, 1)
    assert torch.equal(permutation(x), x[:, index])
    assert torch.equal(permutation.write(torch.mul, x, a, shape=x.shape), (x * a)[:, index])
    assert torch.equal(permutation.add_to(x, r), x[:, index] + r)
    pi = torch.rand(2, 1, 4, 5)
    assert torch.equal(permutation.write(torch.mul, x, pi, shape=x.shape), (x * pi)[:, index])


def test_other_permutations_gather_and_identity_is_dropped():
    index = torch.tensor([2, 0, 3, 1, 5, 4])
    permutation = ChannelPermutation(index)
    assert permutation.dims is None
    x = torch.randn(1, 6, 2, 2)
    assert torch.equal(permutation(x), x[:, index])
    assert torch.equal(permutation.write(torch.relu, x, shape=x.shape), torch.relu(x)[:, index])
    assert ChannelPermutation.identity_or_none(_composed(64, 4, 16)) is None
    with pytest.raises(ValueError, match="permutation"):
        ChannelPermutation(torch.tensor([0, 0, 1]))


@pytest.mark.parametrize("fusions,shifts", [(1, 1), (1, 2), (2, 2), (3, 2), (2, 3), (1, 3)])
@pytest.mark.parametrize("spatial", [False, True])
def test_shift_max(fusions, shifts, spatial):
    module = randomize(
        DynamicShiftMax(
            24, 4, num_shifts=shifts, num_fusions=fusions, reduction=4, spatial_attention=spatial
        )
    )
    fused = FusedShiftMax(module)
    x = torch.randn(3, 24, 5, 6)
    with torch.no_grad():
        assert relative_error(fused(x), module(x)) < TOLERANCE
        assert relative_error(fused(x[:1]), module(x[:1])) < TOLERANCE


@pytest.mark.parametrize("spatial", [False, True])
@pytest.mark.parametrize("fusions", [1, 2])
def test_shift_max_with_permutations_moved_into_it(spatial, fusions):
    """shuffle -> Shift-Max -> shuffle == Shift-Max' with permuted weights and indices,
    writing its output in the second shuffle's order."""
    module = randomize(
        DynamicShiftMax(48, 6, num_fusions=fusions, reduction=4, spatial_attention=spatial)
    )
    before, after = ChannelShuffle(4).permutation(48), ChannelShuffle(24).permutation(48)
    fused = FusedShiftMax(module)
    moved = fused.absorb_input_permutation(before)
    fused.output = ChannelPermutation(moved[after])
    x = torch.randn(2, 48, 4, 7)
    with torch.no_grad():
        expected = module(x[:, before])[:, after]
        assert relative_error(fused(x), expected) < TOLERANCE


def test_depthwise_with_input_permutation():
    layer = randomize(MicroFactorizedDepthwise(8, 3, 2, (2, 2)))
    merged = MergedSeparableConv(layer.conv_kx1, layer.bn_kx1, layer.conv_1xk, layer.bn_1xk)
    index = ChannelShuffle(2).permutation(8)
    moved = merged.absorb_input_permutation(index)
    x = torch.randn(1, 8, 9, 10)
    with torch.no_grad():
        assert relative_error(merged(x)[:, moved], layer(x[:, index])) < TOLERANCE


def test_unknown_layers_are_refused():
    spec = BlockSpec("C", 16, 16, 3, 1, (1, 2), (4, 4), (4, 4), (0, 2, 0), 8)
    block = block_from_spec(spec)
    block.act_expand = nn.GELU()
    with pytest.raises(TypeError, match="GELU"):
        fuse_block(block)
    with pytest.raises(TypeError, match="Micro-Block"):
        fuse_block(nn.Conv2d(3, 3, 1))


def test_fused_buffers_hold_no_autograd_history():
    """Built outside no_grad from trainable layers, the fused buffers are plain tensors."""
    layer = MicroFactorizedDepthwise(4, 3, 1)
    pointwise = GroupedPointwise(8, 8, 2)
    shift_max = DynamicShiftMax(8, 2, spatial_attention=True)
    for module in (
        MergedSeparableConv(layer.conv_kx1, layer.bn_kx1, layer.conv_1xk, layer.bn_1xk),
        FusedPointwise(pointwise.conv, pointwise.bn),
        FusedShiftMax(shift_max),
    ):
        for name, buffer in module.named_buffers():
            assert not buffer.requires_grad, name
