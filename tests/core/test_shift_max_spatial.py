"""Dynamic Shift-Max with DY-ReLU-C's spatial attention (the option the pose head uses)."""

import pytest
import torch

from micronet_backbones import BlockSpec, block_from_spec
from micronet_backbones.ops import DynamicShiftMax, add_spatial_attention, group_shift, shift_max


def _by_hand(layer: DynamicShiftMax, x: torch.Tensor) -> torch.Tensor:
    """Eq. 5 with coefficients a^k_{i,j}(x) * pi_hw(x) given per position (no factoring)."""
    n, c, h, w = x.shape
    logits = torch.nn.functional.conv2d(x, layer.spatial.weight, layer.spatial.bias)
    logits = logits.view(n, h * w) / layer.spatial_temperature
    pi = torch.clamp(torch.softmax(logits, 1) * layer.spatial_gamma * h * w, max=1.0)
    pi = pi.view(n, 1, 1, 1, h, w)
    a = layer.coefficients(x)[..., None, None] * pi  # (N, K, J, C, H, W)
    shifted = [group_shift(x, layer.groups, j) for j in range(layer.num_shifts)]
    fused = [
        sum(a[:, k, j] * shifted[j] for j in range(layer.num_shifts))
        for k in range(layer.num_fusions)
    ]
    return torch.stack(fused).amax(0)


def test_default_module_is_unchanged():
    layer = DynamicShiftMax(16, 4)
    assert layer.spatial is None
    assert sorted(layer.state_dict()) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight"]
    with pytest.raises(ValueError, match="without spatial_attention"):
        layer.spatial_weights(torch.randn(1, 16, 4, 4))


@pytest.mark.parametrize("num_fusions", [1, 2])
def test_spatial_attention_equals_per_position_coefficients(num_fusions):
    torch.manual_seed(0)
    layer = DynamicShiftMax(24, 4, num_fusions=num_fusions, reduction=4, spatial_attention=True)
    torch.nn.init.normal_(layer.spatial.weight, 0.0, 0.5)  # a non-uniform attention
    torch.nn.init.normal_(layer.fc2.weight, 0.0, 0.3)
    x = torch.randn(3, 24, 7, 5)
    pi = layer.spatial_weights(x).detach()
    assert pi.shape == (3, 1, 7, 5)
    assert float(pi.min()) > 0 and float(pi.max()) <= 1.0
    assert float(pi.std()) > 0.01  # it does vary across positions
    torch.testing.assert_close(layer(x), _by_hand(layer, x))
    assert sorted(layer.state_dict()) == [
        "fc1.bias",
        "fc1.weight",
        "fc2.bias",
        "fc2.weight",
        "spatial.bias",
        "spatial.weight",
    ]


def test_uniform_attention_is_gamma_and_large_logits_clip_at_one():
    layer = DynamicShiftMax(8, 2, spatial_attention=True, spatial_gamma=0.25)
    torch.nn.init.zeros_(layer.spatial.weight)
    x = torch.randn(2, 8, 6, 4)
    torch.testing.assert_close(layer.spatial_weights(x), torch.full((2, 1, 6, 4), 0.25))
    torch.testing.assert_close(layer(x), 0.25 * shift_max(x, layer.coefficients(x), layer.groups))
    # One position with a huge logit takes all the softmax mass: clipped to 1, others ~0.
    with torch.no_grad():
        layer.spatial.weight.fill_(1.0)
    x = torch.zeros(1, 8, 6, 4)
    x[0, :, 2, 3] = 100.0
    pi = layer.spatial_weights(x).detach()
    assert float(pi[0, 0, 2, 3]) == 1.0
    assert float(pi.sum()) == pytest.approx(1.0, abs=1e-4)


def test_spatial_attention_learns_and_rejects_bad_settings():
    layer = DynamicShiftMax(8, 2, spatial_attention=True)
    layer(torch.randn(2, 8, 5, 5)).square().sum().backward()
    assert (
        layer.spatial.weight.grad is not None and float(layer.spatial.weight.grad.abs().sum()) > 0
    )
    with pytest.raises(ValueError, match="spatial_temperature"):
        DynamicShiftMax(8, 2, spatial_attention=True, spatial_temperature=0.0)
    with pytest.raises(ValueError, match="spatial_gamma"):
        DynamicShiftMax(8, 2, spatial_attention=True, spatial_gamma=-1.0)


def test_with_spatial_attention_keeps_every_setting():
    layer = DynamicShiftMax(
        12, 3, num_fusions=2, init=((1.0, 0.5), (0.25, -0.5)), coefficient_range=1.5,
        squeeze_channels=6,
    )  # fmt: skip
    spatial = layer.with_spatial_attention(temperature=5.0, gamma=0.5)
    assert spatial is not layer and layer.spatial is None and spatial.spatial is not None
    assert (spatial.channels, spatial.groups) == (12, 3)
    assert spatial.coefficient_shape == layer.coefficient_shape == (2, 2, 12)
    assert torch.equal(spatial.coefficient_init, layer.coefficient_init)
    assert spatial.coefficient_range == 1.5 and spatial.fc1.out_features == 6
    assert (spatial.spatial_temperature, spatial.spatial_gamma) == (5.0, 0.5)
    # With the spatial weights zeroed, the attention is uniform gamma: same function times 0.5.
    spatial.load_state_dict(layer.state_dict(), strict=False)
    torch.nn.init.zeros_(spatial.spatial.weight)
    x = torch.randn(2, 12, 4, 5)
    torch.testing.assert_close(spatial(x), 0.5 * layer(x))


def test_add_spatial_attention_replaces_every_shift_max_once():
    block = block_from_spec(BlockSpec("C", 16, 16, 3, 1, (1, 2), (4, 4), (4, 4), (2, 2, 1), 8))
    before = {n: m for n, m in block.named_modules() if isinstance(m, DynamicShiftMax)}
    assert len(before) == 3 and all(m.spatial is None for m in before.values())
    assert add_spatial_attention(block) is block
    after = {n: m for n, m in block.named_modules() if isinstance(m, DynamicShiftMax)}
    assert after.keys() == before.keys()
    assert all(m.spatial is not None and m is not before[n] for n, m in after.items())
    add_spatial_attention(block)  # already there: kept as they are
    assert all(m is after[n] for n, m in block.named_modules() if isinstance(m, DynamicShiftMax))
