"""The segmentation configs build through MMSegmentation's registry; loss and predict run on
the CPU for M1-M3, and an odd-sized image gets a prediction of its own size."""

from __future__ import annotations

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData
from seg_helpers import CITYSCAPES, FEATURE_CHANNELS, SYNTHETIC


def _model(config, **options):
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None  # no ImageNet weights needed to build
    cfg.merge_from_dict(options)
    return MODELS.build(cfg.model), cfg


def _batch(n: int, height: int, width: int, num_classes: int, with_labels: bool = True):
    from mmseg.structures import SegDataSample

    torch.manual_seed(0)
    inputs = [torch.randint(0, 256, (3, height, width), dtype=torch.uint8) for _ in range(n)]
    samples = []
    for _ in range(n):
        sample = SegDataSample(metainfo=dict(img_shape=(height, width), ori_shape=(height, width)))
        if with_labels:
            sample.gt_sem_seg = PixelData(data=torch.randint(0, num_classes, (1, height, width)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def test_cityscapes_configs_state_the_recipe():
    cfg = Config.fromfile(str(CITYSCAPES["m3"]))
    assert cfg.crop_size == (512, 1024) and cfg.model.data_preprocessor.size == (512, 1024)
    assert any(t.type == "RandomCrop" and t.crop_size == (512, 1024) for t in cfg.train_pipeline)
    assert any(t.type == "Resize" and t.scale == (2048, 1024) for t in cfg.test_pipeline)
    assert cfg.test_evaluator.type == "IoUMetric" and cfg.test_cfg.type == "TestLoop"
    assert cfg.model.test_cfg.mode == "whole"
    optimizer = cfg.optim_wrapper.optimizer
    assert (optimizer.type, optimizer.lr, optimizer.momentum, optimizer.weight_decay) == (
        "SGD",
        0.2,
        0.9,
        4e-5,
    )
    (cosine,) = cfg.param_scheduler
    assert cosine.type == "CosineAnnealingLR" and cosine.eta_min == 1e-4
    assert cfg.train_cfg.max_iters == 240 * -(-2975 // 16)  # 240 epochs at batch 4 x 4
    assert cfg.train_dataloader.batch_size == 4
    for arch, config in CITYSCAPES.items():
        cfg = Config.fromfile(str(config))
        assert cfg.model.backbone.arch == arch
        assert cfg.model.backbone.init_cfg == dict(
            type="Pretrained", checkpoint=f"checkpoints/micronet-{arch}.pth"
        )
        assert config.name == f"micronet-{arch}_mraspp_4xb4-240e_cityscapes-512x1024.py"


@pytest.mark.parametrize("arch", ["m1", "m2", "m3"])
def test_loss_and_predict_on_the_cpu(arch):
    model, cfg = _model(CITYSCAPES[arch], **{"model.data_preprocessor.size": (64, 128)})
    assert tuple(i.channels for i in model.backbone.feature_info) == FEATURE_CHANNELS[arch]
    assert tuple(model.decode_head.in_channels) == FEATURE_CHANNELS[arch]

    model.train()
    data = model.data_preprocessor(_batch(2, 64, 128, 19), training=True)
    losses = model(**data, mode="loss")
    assert set(losses) == {"decode.loss_ce", "decode.acc_seg"}
    assert torch.isfinite(losses["decode.loss_ce"]) and losses["decode.loss_ce"] > 0
    losses["decode.loss_ce"].backward()
    assert model.backbone.body.stem.conv_kx1.weight.grad is not None

    model.eval()
    with torch.no_grad():
        (result,) = model.test_step(_batch(1, 333, 517, 19, with_labels=False))
    assert result.pred_sem_seg.data.shape == (1, 333, 517)
    assert result.seg_logits.data.shape == (19, 333, 517)
    assert int(result.pred_sem_seg.data.max()) < 19


def test_head_in_channels_not_matching_the_backbone_is_a_clear_error():
    # the M3 config's head (24, 864) on M1's backbone (16, 576)
    model, _ = _model(CITYSCAPES["m3"], **{"model.backbone.arch": "m1"})
    with pytest.raises(ValueError, match=r"in_channels=\(24, 864\).*\(16, 576\) channels"):
        model.eval().test_step(_batch(1, 64, 64, 19, with_labels=False))


def test_synthetic_config_builds_and_reads_the_generated_set(small_scenes):
    from mmseg.registry import DATASETS

    model, cfg = _model(SYNTHETIC)
    assert model.decode_head.num_classes == 5 and cfg.crop_size == (128, 128)
    cfg.test_dataloader.dataset.data_root = str(small_scenes)
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(dataset) == 8
    assert dataset.metainfo["classes"] == ("background", "disc", "square", "triangle", "star")
