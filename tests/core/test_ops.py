"""Math of the operators: Micro-Factorized convolutions, channel shuffle, Shift-Max."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from micronet_backbones.ops import (
    ChannelShuffle,
    DynamicShiftMax,
    MicroFactorizedDepthwise,
    MicroFactorizedPointwise,
    StaticShiftMax,
    group_shift,
    micro_factorized_groups,
    shift_max,
)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# --- channel shuffle ------------------------------------------------------------------------


def test_channel_shuffle_is_the_transpose_permutation():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    out = ChannelShuffle(2)(x).flatten().tolist()
    # channels as a 2 x 3 matrix [[0, 1, 2], [3, 4, 5]], read column by column
    assert out == [0, 3, 1, 4, 2, 5]
    assert torch.equal(ChannelShuffle(2).permutation(6), torch.tensor([0, 3, 1, 4, 2, 5]))
    assert torch.equal(ChannelShuffle(1)(x), x)
    assert torch.equal(ChannelShuffle(6)(x), x)


def test_channel_shuffle_rejects_indivisible_channels():
    with pytest.raises(ValueError, match="divisible"):
        ChannelShuffle(4)(torch.zeros(1, 6, 2, 2))
    with pytest.raises(ValueError, match="divisible"):
        ChannelShuffle(4).permutation(6)


def test_channel_shuffle_permutation_is_its_forward():
    """``permutation`` is the shuffle's only index (the inference form folds it into weights)."""
    x = torch.randn(2, 24, 3, 3)
    assert torch.equal(x[:, ChannelShuffle(6).permutation(24)], ChannelShuffle(6)(x))


# --- Micro-Factorized pointwise ---------------------------------------------------------------


def test_group_number_follows_sqrt_c_over_r():
    assert micro_factorized_groups(32, 2) == 4  # sqrt(32 / 2) = 4
    assert micro_factorized_groups(64, 4) == 4  # sqrt(16)
    assert micro_factorized_groups(64, 1) == 8
    assert micro_factorized_groups(64, 4, lam=2.0) == 8
    assert micro_factorized_groups(24, 1) == 4  # sqrt(24) = 4.9: divisors 4 and 6, 4 nearer
    assert micro_factorized_groups(18, 2) == 3
    with pytest.raises(ValueError):
        micro_factorized_groups(30, 4)


def test_mf_pointwise_is_a_dense_conv_of_rank_one_blocks():
    channels, reduction = 32, 2
    layer = MicroFactorizedPointwise(channels, reduction=reduction)
    g = layer.groups
    assert g == 4 and layer.hidden_channels == 16
    x = torch.randn(2, channels, 5, 7)
    dense = layer.dense_weight()
    assert dense.shape == (channels, channels)
    expected = F.conv2d(x, dense[:, :, None, None])
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)

    block = channels // g
    for i in range(g):
        for j in range(g):
            sub = dense[i * block : (i + 1) * block, j * block : (j + 1) * block]
            # every block is an outer product through exactly one hidden channel: rank 1,
            # and none is zero, so every output channel sees every input channel
            assert torch.linalg.matrix_rank(sub).item() == 1, (i, j)
            assert sub.abs().sum() > 0


def test_mf_pointwise_explicit_groups_and_widths():
    layer = MicroFactorizedPointwise(24, 48, hidden_channels=12, groups=6)
    assert layer.groups == 6
    x = torch.randn(1, 24, 3, 3)
    assert layer(x).shape == (1, 48, 3, 3)
    torch.testing.assert_close(
        layer(x), F.conv2d(x, layer.dense_weight()[:, :, None, None]), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ValueError):
        MicroFactorizedPointwise(24, 48, hidden_channels=12, groups=5)


# --- Micro-Factorized depthwise ---------------------------------------------------------------


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("kernel_size", [3, 5])
def test_mf_depthwise_equals_kxk_depthwise_with_outer_product_kernel(kernel_size, stride):
    channels = 6
    layer = MicroFactorizedDepthwise(channels, kernel_size, stride, norm=False)
    x = torch.randn(2, channels, 17, 12)
    column = layer.conv_kx1.weight[:, 0, :, 0]  # (C, k)
    row = layer.conv_1xk.weight[:, 0, 0, :]  # (C, k)
    kernel = column[:, :, None] * row[:, None, :]  # (C, k, k)
    expected = F.conv2d(x, kernel[:, None], None, stride, kernel_size // 2, 1, channels)
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


def test_mf_depthwise_channel_expansion():
    layer = MicroFactorizedDepthwise(4, 3, 2, expansion=(2, 3))
    out = layer(torch.randn(1, 4, 33, 47))
    assert out.shape == (1, 24, 17, 24)
    assert layer.conv_kx1.groups == 4 and layer.conv_1xk.groups == 8


# --- Shift-Max ---------------------------------------------------------------------------------


def test_group_shift_moves_to_next_group_and_next_position():
    x = torch.arange(6.0).view(1, 6, 1, 1)  # 2 groups of 3: [[0, 1, 2], [3, 4, 5]]
    # channel (g, m) reads ((g + 1) % 2, (m + 1) % 3)
    assert group_shift(x, 2, 1).flatten().tolist() == [4, 5, 3, 1, 2, 0]
    assert torch.equal(group_shift(x, 2, 2), group_shift(group_shift(x, 2, 1), 2, 1))
    assert torch.equal(group_shift(x, 2, 0), x)


def _shift_max_by_hand(x, coefficients, groups):
    """Eq. 5 with explicit loops over batch, channel, k, j."""
    n, c = x.shape[:2]
    per = c // groups
    k_count, j_count = coefficients.shape[1:3]
    out = torch.empty_like(x)
    for b in range(n):
        for i in range(c):
            g, m = divmod(i, per)
            candidates = []
            for k in range(k_count):
                total = 0.0
                for j in range(j_count):
                    source = ((g + j) % groups) * per + (m + j) % per
                    total = (
                        total
                        + coefficients[b if coefficients.shape[0] > 1 else 0, k, j, i]
                        * x[b, source]
                    )
                candidates.append(total)
            out[b, i] = torch.stack(candidates).max(dim=0).values
    return out


@pytest.mark.parametrize("num_shifts,num_fusions", [(2, 2), (3, 2), (2, 1), (1, 3)])
def test_static_shift_max_equals_the_formula_by_hand(num_shifts, num_fusions):
    channels, groups = 6, 2
    layer = StaticShiftMax(channels, groups, num_shifts=num_shifts, num_fusions=num_fusions)
    with torch.no_grad():
        layer.coefficients.copy_(torch.randn(num_fusions, num_shifts, channels))
    x = torch.randn(2, channels, 3, 4)
    expected = _shift_max_by_hand(x, layer.coefficients[None].detach(), groups)
    torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)


def test_shift_max_per_sample_coefficients_by_hand():
    x = torch.randn(3, 8, 2, 2)
    coefficients = torch.randn(3, 2, 2, 8)
    torch.testing.assert_close(
        shift_max(x, coefficients, 4), _shift_max_by_hand(x, coefficients, 4), rtol=1e-6, atol=1e-6
    )


def test_static_shift_max_default_is_identity_and_j1_k2_is_relu():
    x = torch.randn(2, 4, 3, 3)
    assert torch.equal(StaticShiftMax(4, 2)(x), x)
    relu = StaticShiftMax(4, 1, num_shifts=1, num_fusions=2, init=((1.0,), (0.0,)))
    assert torch.equal(relu(x), F.relu(x))


def test_dynamic_shift_max_j1_k2_is_dynamic_relu():
    channels = 8
    layer = DynamicShiftMax(
        channels, 1, num_shifts=1, num_fusions=2, init=((1.0,), (0.0,)), reduction=2
    )
    x = torch.randn(3, channels, 5, 5)
    # With a zero hyper-function the coefficients are their offsets: max(x, 0) = ReLU.
    with torch.no_grad():
        layer.fc2.weight.zero_()
        layer.fc2.bias.zero_()
    torch.testing.assert_close(layer(x), F.relu(x))
    # With a live hyper-function: y = max_k a^k(x) * x, per sample and channel.
    with torch.no_grad():
        layer.fc2.weight.normal_(0.0, 1.0)
    a = layer.coefficients(x)  # (N, K=2, J=1, C)
    assert a.shape == (3, 2, 1, channels)
    expected = torch.maximum(a[:, 0, 0, :, None, None] * x, a[:, 1, 0, :, None, None] * x)
    torch.testing.assert_close(layer(x), expected)
    assert not torch.allclose(a[0], a[1])  # coefficients depend on the input


def test_dynamic_shift_max_coefficients_follow_the_hyper_function():
    channels, groups = 12, 3
    layer = DynamicShiftMax(channels, groups, reduction=4, init=((1.0, 0.0), (0.5, 0.5)))
    assert layer.fc1.out_features == 4 and layer.fc2.out_features == 2 * 2 * channels
    with torch.no_grad():
        layer.fc2.weight.normal_(0.0, 1.0)
    x = torch.randn(2, channels, 4, 6)
    pooled = x.mean((2, 3))
    gate = F.hardsigmoid(layer.fc2(F.relu(layer.fc1(pooled))))
    expected = (gate - 0.5).view(2, 2, 2, channels) * 4.0 + torch.tensor([[1.0, 0.0], [0.5, 0.5]])[
        None, :, :, None
    ]
    torch.testing.assert_close(layer.coefficients(x), expected, rtol=1e-5, atol=1e-6)
    coefficients = layer.coefficients(x)
    assert coefficients.min() >= -2.0 and coefficients.max() <= 3.0
    torch.testing.assert_close(layer(x), _shift_max_by_hand(x, coefficients, groups))


@pytest.mark.parametrize("num_fusions,num_shifts", [(2, 2), (1, 2), (3, 2), (2, 3), (1, 1)])
def test_folded_hyper_function_is_the_coefficients(num_fusions, num_shifts):
    """The inference form's hyper-function (one affine map and a clamp after fc1, axes
    (K, J, C) named by its shape) equals ``coefficients`` beyond float32 rounding, both clamp
    bounds included, whatever K and J: it cannot drift from fc2's row order."""
    init = [[1.0 - 0.3 * k + 0.2 * j for j in range(num_shifts)] for k in range(num_fusions)]
    layer = DynamicShiftMax(
        12, 3, num_shifts=num_shifts, num_fusions=num_fusions, reduction=4, init=init,
        coefficient_range=1.5,
    ).double()  # fmt: skip
    with torch.no_grad():
        layer.fc1.weight.normal_(0.0, 1.0)
        layer.fc2.weight.normal_(0.0, 2.0)
        layer.fc2.bias.normal_(0.0, 2.0)
    x = torch.randn(3, 12, 5, 4, dtype=torch.float64)
    folded = layer.folded_hyper_function()
    k, j, c = layer.coefficient_shape
    assert (k, j, c) == (num_fusions, num_shifts, 12)
    assert folded.weight.shape == (k, j, c, layer.fc1.out_features)
    assert folded.bias.shape == folded.low.shape == folded.high.shape == (k, j, c)
    hidden = F.relu(x.mean((2, 3)) @ folded.fc1_weight.t() + folded.fc1_bias)
    a = torch.einsum("kjcs,ns->nkjc", folded.weight, hidden) + folded.bias
    a = torch.clamp(a, folded.low, folded.high)
    with torch.no_grad():
        expected = layer.coefficients(x)
    torch.testing.assert_close(a, expected, rtol=1e-12, atol=1e-12)
    assert (a == folded.low).any() and (a == folded.high).any()  # both bounds are reached
    assert ((a > folded.low) & (a < folded.high)).any()


def test_dynamic_shift_max_at_arbitrary_width_and_bad_input():
    layer = DynamicShiftMax(20, 5, num_fusions=1)
    assert layer(torch.randn(1, 20, 7, 3)).shape == (1, 20, 7, 3)
    with pytest.raises(ValueError, match=r"\(N, 20, H, W\)"):
        layer(torch.randn(1, 16, 7, 3))
    with pytest.raises(ValueError, match=r"\(N, 20, H, W\)"):
        layer(torch.randn(20, 7, 3))
    with pytest.raises(ValueError):
        DynamicShiftMax(20, 3)
    with pytest.raises(ValueError):
        DynamicShiftMax(20, 5, num_fusions=2, init=((1.0, 0.0),))
