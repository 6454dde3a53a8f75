"""The full-rank partner of M0-M3, walked side by side with its MicroNet: same widths, depth and
Dynamic Shift-Max layout; only the blocks' pointwise (dense 1x1) and depthwise (k x k) convolutions
differ."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from micronet_backbones import (
    DynamicShiftMax,
    GroupedPointwise,
    MicroFactorizedDepthwise,
    create_model,
    full_rank_partner,
    get_spec,
    list_models,
)
from micronet_backbones.full_rank import FullRankDepthwise

POINTWISE = ("expand", "project")


def _layout(module: nn.Module) -> tuple:
    """Everything that makes two modules alike: their repr (types, widths, kernels, groups,
    strides, Shift-Max settings) and the names and shapes of their tensors."""
    return repr(module), [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def _shift_maxes(model: nn.Module) -> list[tuple]:
    return [
        (
            name,
            m.channels,
            m.groups,
            m.num_shifts,
            m.num_fusions,
            m.coefficient_range,
            m.coefficient_init.flatten().tolist(),
            tuple(m.fc1.weight.shape),
            tuple(m.fc2.weight.shape),
        )
        for name, m in model.named_modules()
        if isinstance(m, DynamicShiftMax)
    ]


def _blocks(model) -> list[nn.Module]:
    return [block for stage in model.stages for block in stage]


@pytest.mark.parametrize("name", list_models())
def test_partner_differs_only_in_the_named_convolutions(name):
    spec = get_spec(name)
    micronet, partner = create_model(name, num_classes=10), full_rank_partner(name, num_classes=10)

    # The same stem, classifier, stages and depth (one block per spec row, in order).
    assert _layout(partner.stem) == _layout(micronet.stem)
    assert _layout(partner.head) == _layout(micronet.head)
    assert [len(s) for s in partner.stages] == [len(s) for s in micronet.stages]
    assert len(_blocks(partner)) == len(spec.blocks)
    assert partner.stage_info == micronet.stage_info

    # Every Dynamic Shift-Max the same, at the same place.
    assert _shift_maxes(partner) == _shift_maxes(micronet)
    assert len(_shift_maxes(micronet)) > 0

    replaced = 0
    for row, ours, theirs in zip(spec.blocks, _blocks(micronet), _blocks(partner)):
        assert type(theirs) is type(ours)
        assert (theirs.in_channels, theirs.out_channels, theirs.stride, theirs.use_residual) == (
            ours.in_channels,
            ours.out_channels,
            ours.stride,
            ours.use_residual,
        )
        assert [n for n, _ in theirs.named_children()] == [n for n, _ in ours.named_children()]
        for layer, mine in ours.named_children():
            full = getattr(theirs, layer)
            if layer in POINTWISE:  # grouped 1x1 (+ BN) -> dense 1x1 (+ BN)
                assert isinstance(mine, GroupedPointwise) and isinstance(full, GroupedPointwise)
                groups = row.expand_groups[0] if layer == "expand" else row.project_groups[0]
                assert mine.conv.groups == groups > 1
                assert full.conv.groups == 1
                assert full.conv.weight.shape == (
                    mine.conv.out_channels,
                    mine.conv.in_channels,
                    1,
                    1,
                )
                assert _layout(full.bn) == _layout(mine.bn)
            elif layer == "depthwise":  # k x 1 then 1 x k (2 BN) -> k x k depthwise (1 BN)
                k, s = row.kernel_size, ours.stride
                assert isinstance(mine, MicroFactorizedDepthwise) and isinstance(
                    full, FullRankDepthwise
                )
                assert mine.conv_kx1.kernel_size == (k, 1) and mine.conv_1xk.kernel_size == (1, k)
                assert (mine.conv_kx1.stride, mine.conv_1xk.stride) == ((s, 1), (1, s))
                assert full.conv.kernel_size == (k, k) and full.conv.stride == (s, s)
                assert full.conv.padding == (k // 2, k // 2)
                groups = row.in_channels if row.kind == "A" else row.hidden_channels
                assert full.conv.groups == mine.conv_kx1.groups == groups
                assert (full.in_channels, full.out_channels) == (
                    mine.in_channels,
                    mine.out_channels,
                )
                assert full.bn.num_features == mine.bn_1xk.num_features
            else:  # activations, Shift-Maxes and channel shuffles: identical
                assert _layout(full) == _layout(mine), f"{name} {layer}"
                continue
            replaced += 1
    assert replaced == sum(3 if r.kind == "C" else 2 if r.kind == "A" else 1 for r in spec.blocks)

    # The same feature maps (shapes) at every stride, and logits of the same shape.
    x = torch.randn(2, 3, 64, 64)
    backbone = full_rank_partner(name, features_only=True).eval()
    reference = create_model(name, features_only=True).eval()
    with torch.no_grad():
        assert [f.shape for f in backbone(x)] == [f.shape for f in reference(x)]
        assert partner.eval()(x).shape == (2, 10)
    assert sum(p.numel() for p in partner.parameters()) > sum(
        p.numel() for p in micronet.parameters()
    )


@pytest.mark.parametrize("kind_index", [0, 3])  # M0's first A row (expanding), first C row
def test_full_rank_depthwise_contains_the_factorized_one(kind_index):
    """The docstring's claim: the k x k conv with C groups and multiplier e1 * e2 holds the
    expanding factorized pair as the special case of rank-1 kernels, in the same channel order."""
    row = get_spec("m0").blocks[kind_index]
    channels = row.in_channels if row.kind == "A" else row.hidden_channels
    expansion = row.expansion if row.kind == "A" else (1, 1)
    e1, e2 = expansion
    torch.manual_seed(0)
    factorized = MicroFactorizedDepthwise(channels, row.kernel_size, 2, expansion, norm=False)
    full = FullRankDepthwise(channels, row.kernel_size, 2, expansion)
    with torch.no_grad():
        kx1 = factorized.conv_kx1.weight[:, 0, :, 0]  # (C * e1, k)
        one_by_k = factorized.conv_1xk.weight[:, 0, 0, :]  # (C * e1 * e2, k)
        full.conv.weight.copy_(
            torch.einsum("oi,oj->oij", kx1.repeat_interleave(e2, 0), one_by_k)[:, None]
        )
        x = torch.randn(2, channels, 13, 11)
        assert torch.allclose(full.conv(x), factorized(x), atol=1e-5)
    assert full.conv.weight.shape == (channels * e1 * e2, 1, row.kernel_size, row.kernel_size)


def test_partner_refuses_other_convolutions():
    with pytest.raises(TypeError, match="convs"):
        full_rank_partner("m0", convs=None)
    with pytest.raises(ValueError, match="valid names"):
        full_rank_partner("m7")
