"""The COCO configs build through MMPose's registry and run loss() and predict() on the CPU;
init_model with a config and a Runner-saved checkpoint, then inference_topdown, gives 17
keypoints per box."""

import json

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmpose.datasets.transforms import RandomBBoxTransform
from mmpose.registry import DATASETS, MODELS
from pose_helpers import M2_COCO, M3_COCO, point_config_at

from micronet_backbones.openmmlab import mmengine_checkpoints


def _batch(cfg, split: str, size: int):
    loader = cfg.train_dataloader if split == "train" else cfg.val_dataloader
    dataset = DATASETS.build(loader.dataset)
    return pseudo_collate([dataset[i] for i in range(size)])


@pytest.mark.parametrize("config, channels", [(M3_COCO, 864), (M2_COCO, 768)])
def test_coco_config_builds_and_runs_loss_and_predict(config, channels, small_coco):
    cfg = point_config_at(Config.fromfile(str(config)), small_coco)
    assert cfg.custom_imports == dict(
        imports=["micronet_backbones.pose"], allow_failed_imports=False
    )
    assert cfg.optim_wrapper.optimizer == dict(type="Adam", lr=1e-3)
    assert cfg.train_cfg.max_epochs == 250 and cfg.param_scheduler[1].milestones == [210, 240]
    assert [t.type for t in cfg.train_pipeline] == [
        "LoadImage",
        "GetBBoxCenterScale",
        "RandomFlip",
        "RandomHalfBody",
        "RandomBBoxTransform",
        "TopdownAffine",
        "GenerateTarget",
        "PackPoseInputs",
    ]
    # the paper's augmentation: rotation in [-45, 45] degrees, scale in [0.65, 1.35], no shift
    bbox_transform = RandomBBoxTransform(
        **{k: v for k, v in cfg.train_pipeline[4].items() if k != "type"}
    )
    assert bbox_transform.rotate_factor == 45.0 and tuple(bbox_transform.scale_factor) == (
        0.65,
        1.35,
    )
    assert bbox_transform.shift_prob == 0.0
    np.random.seed(0)
    offset, scale, rotate = bbox_transform._get_transform_params(2000)
    assert (offset == 0).all()
    assert 0.65 <= scale.min() < 0.7 and 1.3 < scale.max() <= 1.35
    assert -45 <= rotate.min() < -40 and 40 < rotate.max() <= 45
    assert cfg.val_evaluator.type == "CocoMetric"
    assert "bbox_file" in cfg.val_dataloader.dataset  # detected boxes: an option

    cfg.model.backbone.init_cfg = None  # no ImageNet weights in the test
    model = MODELS.build(cfg.model)
    assert type(model.backbone).__name__ == "MicroNetBackbone"
    assert model.head.in_channels == channels

    model.train()
    data = model.data_preprocessor(_batch(cfg, "train", 2), training=True)
    assert data["inputs"].shape == (2, 3, 256, 192)
    losses = model(**data, mode="loss")
    assert set(losses) == {"loss_kpt", "acc_pose"} and torch.isfinite(losses["loss_kpt"])
    losses["loss_kpt"].backward()
    assert model.backbone.body.stem.conv_kx1.weight.grad is not None

    model.eval()
    with torch.no_grad():
        results = model.test_step(_batch(cfg, "val", 2))  # flip test on, as configured
    assert cfg.model.test_cfg.flip_test
    assert len(results) == 2
    for result in results:
        assert result.pred_instances.keypoints.shape == (1, 17, 2)
        assert result.pred_instances.keypoint_scores.shape == (1, 17)


def test_init_model_and_inference_topdown_with_a_runner_checkpoint(small_coco, tmp_path):
    """One short Runner epoch writes a real MMEngine checkpoint (dataset meta, message hub,
    optimizer); init_model reads it back under torch.load's weights_only default inside
    ``mmengine_checkpoints()``."""
    from mmengine.runner import Runner
    from mmpose.apis import inference_topdown, init_model

    cfg = point_config_at(Config.fromfile(str(M3_COCO)), small_coco)
    cfg.model.backbone.init_cfg = None
    codec = dict(type="MSRAHeatmap", input_size=(48, 64), heatmap_size=(12, 16), sigma=1)
    cfg.model.head.decoder = codec
    for pipeline in (cfg.train_dataloader.dataset.pipeline, cfg.val_dataloader.dataset.pipeline):
        for step in pipeline:
            if step.type == "TopdownAffine":
                step.input_size = codec["input_size"]
            if step.type == "GenerateTarget":
                step.encoder = codec
    cfg.test_dataloader = cfg.val_dataloader
    cfg.train_dataloader.batch_size = 8
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
    cfg.param_scheduler = []
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.work_dir = str(tmp_path / "work")
    Runner.from_cfg(cfg).train()
    checkpoint = tmp_path / "work" / "epoch_1.pth"
    assert checkpoint.is_file()

    with mmengine_checkpoints():
        model = init_model(cfg, str(checkpoint), device="cpu")
    assert model.dataset_meta["num_keypoints"] == 17
    saved = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0, msg=key)

    coco = json.loads((small_coco / "annotations" / "person_keypoints_val.json").read_text())
    image = small_coco / "images" / "val" / coco["images"][0]["file_name"]
    boxes = np.array([[10.0, 10.0, 90.0, 150.0], [40.0, 5.0, 120.0, 140.0]])
    results = inference_topdown(model, str(image), boxes, bbox_format="xyxy")
    assert len(results) == 2
    for result in results:
        assert result.pred_instances.keypoints.shape == (1, 17, 2)
        assert result.pred_instances.keypoint_scores.shape == (1, 17)
