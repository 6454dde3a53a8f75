"""The segmentors the flops tool counts (``micronet_backbones.segmentation.segmentor``): the
configs' models and MMSegmentation's own LR-ASPP MobileNetV3, as plain tensor modules."""

from __future__ import annotations

import pytest
import torch
from seg_helpers import REPO_ROOT

from micronet_backbones.flops import count_model
from micronet_backbones.segmentation.segmentor import (
    CITYSCAPES_CONFIGS,
    MMSEG_LRASPP_CONFIG,
    SegmentationLogits,
    build_segmentor,
)


def test_counted_model_is_backbone_and_head_and_the_head_costs_little():
    segmentor = build_segmentor(REPO_ROOT / CITYSCAPES_CONFIGS["micronet_m3"])
    model = SegmentationLogits(segmentor)
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, 128, 256))
    assert logits.shape == (1, 19, 16, 32)
    params, madds = count_model(model, (1, 3, 128, 256))
    backbone_params, backbone_madds = count_model(segmentor.backbone, (1, 3, 128, 256))
    assert params == sum(p.numel() for p in segmentor.parameters())
    assert backbone_madds < madds < 1.5 * backbone_madds  # MF convs keep the head light


def test_mmsegs_own_lraspp_builds_in_the_same_process_and_fails_where_ours_does_not():
    theirs = SegmentationLogits(build_segmentor(MMSEG_LRASPP_CONFIG))
    assert type(theirs.decode_head).__name__ == "LRASPPHead"
    ours = SegmentationLogits(build_segmentor(REPO_ROOT / CITYSCAPES_CONFIGS["micronet_m1"]))
    image = torch.zeros(1, 3, 333, 517)  # its stride-8 map is smaller than its 49x49 pool
    with torch.no_grad():
        assert ours(image).shape == (1, 19, 42, 65)
        with pytest.raises(RuntimeError):
            theirs(image)
