"""Inference form of a top-down heatmap model without MMPose: a stride-16 MicroNet and a head of
core Micro-Blocks whose Shift-Maxes carry DY-ReLU-C's spatial attention (what the pose
adapter's ``MicroBlockHead`` is made of), checked on every clone; ``test_pose.py`` checks the
MMPose model itself where MMPose is installed."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from deploy_helpers import TOLERANCE, random_model, randomize, relative_error
from torch import nn

from micronet_backbones import BlockSpec, block_from_spec
from micronet_backbones.deploy import fuse_heatmap_model
from micronet_backbones.ops import DynamicShiftMax, add_spatial_attention


def _head(in_channels: int, keypoints: int = 5):
    """Stages (one C block at stride 8, a residual C block at stride 4) and the final conv."""
    rows = [
        [BlockSpec("C", in_channels, 32, 5, 1, (1, 1), (8, 8), (4, 4), (2, 2, 1), 8)],
        [BlockSpec("C", 32, 32, 5, 1, (1, 2), (4, 4), (4, 4), (2, 2, 1), 4)],
    ]
    stages = [[add_spatial_attention(block_from_spec(row)) for row in stage] for stage in rows]
    final = nn.Conv2d(32, keypoints, 1)
    return stages, final


@pytest.mark.parametrize("align_corners", [False, True])
def test_heatmap_model_inference_form_is_exact(align_corners):
    backbone = random_model("micronet_m0", features_only=True, output_stride=16)
    stages, final = _head(backbone.feature_info[-1].channels)
    for seed, stage in enumerate(stages):
        for block in stage:
            randomize(block, seed=seed)
    with torch.no_grad():
        final.weight.normal_(0.0, 0.1)
        final.bias.normal_(0.0, 0.1)
    assert all(
        m.spatial is not None
        for stage in stages
        for block in stage
        for m in block.modules()
        if isinstance(m, DynamicShiftMax)
    )
    x = torch.randn(2, 3, 128, 96)
    with torch.no_grad():
        y = backbone(x)[-1]
        for stage in stages:
            y = F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=align_corners)
            for block in stage:
                y = block(y)
        expected = final(y)
        actual = fuse_heatmap_model(backbone, stages, final, align_corners)(x)
    assert actual.shape == expected.shape == (2, 5, 32, 24)
    assert relative_error(actual, expected) < TOLERANCE
