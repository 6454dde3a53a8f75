"""MRASPPHead: the LR-ASPP layout with Micro-Factorized pointwise convs, at any input size."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from micronet_backbones.ops import DynamicShiftMax, MicroFactorizedPointwise


def _head(**kwargs):
    from mmseg.registry import MODELS

    cfg = dict(type="MRASPPHead", in_channels=(24, 864), channels=128, num_classes=5)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _features(n: int, h16: int, w16: int, channels=(24, 864)):
    """Stride-8 and stride-16 features of an image of about (16 h16, 16 w16)."""
    torch.manual_seed(0)
    return (torch.randn(n, channels[0], 2 * h16, 2 * w16), torch.randn(n, channels[1], h16, w16))


def test_layout_uses_micro_factorized_pointwise_convs_where_lraspp_has_1x1s():
    head = _head()
    assert isinstance(head.branch, MicroFactorizedPointwise)
    assert isinstance(head.gate, MicroFactorizedPointwise)
    assert head.branch.groups > 1 and head.gate.groups > 1  # factorized, not dense
    assert isinstance(head.activation, nn.ReLU)
    # the only plain 1x1 convs are the two classifiers
    plain = [name for name, m in head.named_modules() if isinstance(m, nn.Conv2d) and m.groups == 1]
    assert sorted(plain) == ["conv_seg", "low_classifier"]


@pytest.mark.parametrize("h16, w16", [(21, 33), (1, 1), (4, 7), (64, 128)])
def test_logits_at_the_stride8_size_for_any_feature_size(h16, w16):
    head = _head().eval()
    low, high = _features(2, h16, w16)
    with torch.no_grad():
        logits = head((low, high))
    assert logits.shape == (2, 5, 2 * h16, 2 * w16)
    assert torch.isfinite(logits).all()


def test_forward_is_the_sum_of_the_two_classifiers_with_a_global_gate():
    head = _head().eval()
    low, high = _features(1, 5, 6)
    with torch.no_grad():
        gate = torch.sigmoid(head.gate(high.mean(dim=(2, 3), keepdim=True)))
        x = torch.relu(head.branch(high)) * gate
        x = nn.functional.interpolate(x, size=low.shape[2:], mode="bilinear", align_corners=False)
        expected = head.conv_seg(x) + head.low_classifier(low)
        assert torch.allclose(head((low, high)), expected, atol=1e-6)
        # the gate is global: a change in one corner of the stride-16 map reaches the logits
        # at the opposite corner, beyond the bilinear upsampling's reach
        changed = high.clone()
        changed[..., 0, 0] += 5.0
        assert not torch.allclose(head((low, changed))[..., -1, -1], expected[..., -1, -1])


def test_shift_max_option_uses_the_cores_dynamic_shift_max_with_spatial_attention():
    head = _head(shift_max=True).eval()
    assert isinstance(head.activation, DynamicShiftMax)
    assert head.activation.spatial is not None
    assert head.activation.groups == head.branch.groups
    low, high = _features(2, 3, 5)
    assert head((low, high)).shape == (2, 5, 6, 10)


def test_loss_trains_every_parameter():
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    head = _head(shift_max=True).train()
    low, high = _features(2, 4, 4)
    samples = []
    for _ in range(2):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 64, 64)))
        samples.append(sample)
    losses = head.loss((low, high), samples, train_cfg={})
    assert set(losses) == {"loss_ce", "acc_seg"}
    losses["loss_ce"].backward()
    missing = [name for name, p in head.named_parameters() if p.grad is None]
    assert not missing


def test_in_channels_not_matching_the_features_is_a_clear_error():
    head = _head()  # built for M3 (24, 864)
    low, high = _features(1, 4, 4, channels=(16, 576))  # M1's features
    with pytest.raises(ValueError, match=r"in_channels=\(24, 864\).*\(16, 576\)"):
        head((low, high))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(input_transform="resize_concat"), "multiple_select"),
        (dict(in_channels=(24, 96, 864), in_index=(0, 1, 2)), r"in_channels=\(C8, C16\)"),
        (dict(in_index=0), "in_index"),
    ],
)
def test_bad_configuration_is_a_clear_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _head(**kwargs)
