"""MMPose 1.3.2 with mmcv 2.1.0 (compiled ops) and mmengine builds and runs a top-down model."""

import pytest
import torch

mmpose = pytest.importorskip("mmpose")


def test_mmcv_ops_nms_runs():
    from mmcv.ops import nms

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    assert dets.shape == (2, 5)


def test_topdown_pose_estimator_with_mobilenetv2_extracts_features():
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    register_all_modules()
    model = MODELS.build(
        dict(
            type="TopdownPoseEstimator",
            data_preprocessor=dict(
                type="PoseDataPreprocessor",
                mean=[123.675, 116.28, 103.53],
                std=[58.395, 57.12, 57.375],
                bgr_to_rgb=True,
            ),
            backbone=dict(type="MobileNetV2", widen_factor=1.0, out_indices=(7,)),
            head=dict(
                type="HeatmapHead",
                in_channels=1280,
                out_channels=17,
                loss=dict(type="KeypointMSELoss", use_target_weight=True),
                decoder=dict(
                    type="MSRAHeatmap", input_size=(192, 256), heatmap_size=(48, 64), sigma=2
                ),
            ),
        )
    )
    model.eval()
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(2, 3, 256, 192))
    assert len(feats) == 1
    assert feats[0].shape == (2, 1280, 8, 6)
