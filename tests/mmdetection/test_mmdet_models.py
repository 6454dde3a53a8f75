"""MMDetection RetinaNet and Faster R-CNN with MicroNet-M3 + FPN, built from configs/mmdet:
a training step and inference on the CPU on an odd-sized image, the authors' checkpoint
through ``init_cfg``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")

from micronet_testing import compact_fixture  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.optim import OptimWrapper  # noqa: E402
from mmengine.structures import InstanceData  # noqa: E402

import micronet_backbones as mb  # noqa: E402
from micronet_backbones.openmmlab import MicroNetBackbone  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    "retinanet": REPO_ROOT / "configs/mmdet/retinanet_micronet-m3_fpn_ms-640-800-3x_coco.py",
    "faster_rcnn": REPO_ROOT / "configs/mmdet/faster-rcnn_micronet-m3_fpn_ms-3x_coco.py",
}
HEIGHT, WIDTH = 333, 517  # odd sizes: the data preprocessor pads to multiples of 32


@pytest.fixture(scope="module", autouse=True)
def mmdet_registry():
    """MMDetection's modules and ours registered, MMDetection as the default scope."""
    from mmdet.utils import register_all_modules

    import micronet_backbones.mmdetection  # noqa: F401  (registers MicroNet)

    register_all_modules(init_default_scope=True)


def _model(name: str, init_cfg=None):
    from mmdet.registry import MODELS

    cfg = Config.fromfile(str(CONFIGS[name]))
    cfg.model.backbone.init_cfg = init_cfg
    return cfg, MODELS.build(cfg.model)


def _batch(num_images: int = 1) -> dict:
    """Odd-sized uint8 images with two ground-truth boxes each, as a data loader gives them."""
    from mmdet.structures import DetDataSample

    generator = torch.Generator().manual_seed(0)
    inputs, samples = [], []
    for _ in range(num_images):
        inputs.append(
            torch.randint(0, 256, (3, HEIGHT, WIDTH), dtype=torch.uint8, generator=generator)
        )
        sample = DetDataSample(
            metainfo=dict(
                img_id=0,
                img_shape=(HEIGHT, WIDTH),
                ori_shape=(HEIGHT, WIDTH),
                scale_factor=(1.0, 1.0),
            )
        )
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[30.0, 40.0, 200.0, 260.0], [250.0, 100.0, 480.0, 310.0]]),
            labels=torch.tensor([0, 5]),
        )
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


@pytest.mark.parametrize("name", ["retinanet", "faster_rcnn"])
def test_config_is_micronet_m3_fpn_on_the_3x_schedule(name):
    cfg = Config.fromfile(str(CONFIGS[name]))
    assert cfg.default_scope == "mmdet"
    assert cfg.custom_imports.imports == ["micronet_backbones.mmdetection"]
    backbone = cfg.model.backbone
    assert backbone.type == "MicroNet" and backbone.arch == "m3" and "depth" not in backbone
    assert backbone.init_cfg == dict(type="Pretrained", checkpoint="checkpoints/micronet-m3.pth")
    # 3x: 12 epochs of a 3x repeated COCO train2017 (36 epochs), lr x 0.1 at 27 and 33 epochs
    assert cfg.train_cfg.max_epochs == 12 and cfg.train_dataloader.dataset.times == 3
    assert cfg.param_scheduler[1].milestones == [9, 11]
    assert cfg.train_dataloader.dataset.dataset.ann_file == "annotations/instances_train2017.json"
    resize = cfg.train_dataloader.dataset.dataset.pipeline[2]
    assert resize.type == "RandomResize" and resize.scale == [(1333, 640), (1333, 800)]
    assert cfg.val_evaluator.type == "CocoMetric"
    # the FPN reads exactly the backbone's maps
    channels = [
        i.channels
        for i in MicroNetBackbone(
            **{k: v for k, v in backbone.items() if k not in ("type", "init_cfg")}
        ).feature_info
    ]
    assert cfg.model.neck.in_channels == channels


@pytest.mark.parametrize("name", ["retinanet", "faster_rcnn"])
def test_training_step_and_inference_on_an_odd_sized_image(name):
    cfg, model = _model(name)
    assert isinstance(model.backbone, MicroNetBackbone)
    model.train()
    assert not model.backbone.body.stem.training  # frozen_stages=1 ...
    assert all(
        not m.training
        for m in model.backbone.modules()  # ... and norm_eval
        if isinstance(m, torch.nn.BatchNorm2d)
    )

    trainable = dict(model.named_parameters())
    before = {k: v.detach().clone() for k, v in trainable.items()}
    running_mean = model.backbone.body.stages[3][0].expand.bn.running_mean.clone()
    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    log_vars = model.train_step(_batch(2), optim_wrapper)
    assert torch.isfinite(log_vars["loss"]) and float(log_vars["loss"].detach()) > 0
    changed = {k for k, v in trainable.items() if not torch.equal(v, before[k])}
    assert any(k.startswith("backbone.body.stages.3") for k in changed)
    assert any(k.startswith("neck.") for k in changed)
    assert not any(k.startswith(("backbone.body.stem", "backbone.body.stages.0")) for k in changed)
    torch.testing.assert_close(
        model.backbone.body.stages[3][0].expand.bn.running_mean, running_mean, rtol=0, atol=0
    )

    # untrained scores sit near the class prior: keep every box to check the output frame
    test_cfg = model.test_cfg.rcnn if name == "faster_rcnn" else model.test_cfg
    test_cfg.score_thr = 0.0
    model.eval()
    with torch.no_grad():
        (result,) = model.test_step(_batch(1))
    assert result.metainfo["ori_shape"] == (HEIGHT, WIDTH)
    assert result.metainfo["batch_input_shape"] == (352, 544)  # padded to multiples of 32
    boxes = result.pred_instances.bboxes
    assert boxes.shape == (test_cfg.max_per_img, 4)
    assert result.pred_instances.scores.shape == result.pred_instances.labels.shape == (100,)
    assert boxes[:, 0::2].min() >= 0 and boxes[:, 0::2].max() <= WIDTH
    assert boxes[:, 1::2].min() >= 0 and boxes[:, 1::2].max() <= HEIGHT
    assert int(result.pred_instances.labels.max()) < 80


def test_authors_checkpoint_loads_through_init_cfg(authors_checkpoint):
    path = authors_checkpoint("m3")
    _, model = _model("retinanet", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    model.init_weights()
    expected = mb.convert_authors_state_dict(
        compact_fixture("m3")["state_dict"], mb.get_spec("micronet_m3")
    )
    loaded = model.backbone.body.state_dict()
    for key, value in loaded.items():
        if key.endswith("num_batches_tracked") and key not in expected:
            continue
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)

    _, wrong = _model(
        "faster_rcnn", init_cfg=dict(type="Pretrained", checkpoint=str(authors_checkpoint("m2")))
    )
    before = {k: v.clone() for k, v in wrong.backbone.state_dict().items()}
    with pytest.raises(mb.CheckpointError, match="micronet_m2.*micronet_m3"):
        wrong.init_weights()
    for key, value in wrong.backbone.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed although loading failed"
