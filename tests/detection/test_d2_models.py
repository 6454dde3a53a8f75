"""The shipped YAML configs build Faster R-CNN / RetinaNet over MicroNet that train and infer on the CPU."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("detectron2")
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402

from micronet_backbones.detection import add_micronet_config  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "detection"
COCO_CONFIGS = [
    "faster_rcnn_micronet_m2_fpn_3x.yaml",
    "faster_rcnn_micronet_m3_fpn_3x.yaml",
    "retinanet_micronet_m2_fpn_3x.yaml",
    "retinanet_micronet_m3_fpn_3x.yaml",
]


def _load(name, *opts):
    cfg = get_cfg()
    add_micronet_config(cfg)
    cfg.merge_from_file(str(CONFIGS / name))
    cfg.merge_from_list(list(opts))
    return cfg


@pytest.mark.parametrize("name", COCO_CONFIGS)
def test_coco_configs_say_what_the_paper_trains(name):
    cfg = _load(name)
    retinanet = name.startswith("retinanet")
    arch = "micronet_m2" if "_m2_" in name else "micronet_m3"
    assert cfg.MODEL.META_ARCHITECTURE == ("RetinaNet" if retinanet else "GeneralizedRCNN")
    assert cfg.MODEL.BACKBONE.NAME == (
        "build_micronet_retinanet_fpn" if retinanet else "build_micronet_fpn"
    )
    assert cfg.MODEL.MICRONET.ARCH == arch
    assert cfg.MODEL.MICRONET.WEIGHTS.endswith(f"micronet-{arch[-2:]}.pth")
    assert cfg.MODEL.WEIGHTS == ""
    # 3x: 270k iterations of 16 images, about 37 COCO epochs (the paper: 36).
    assert (cfg.SOLVER.IMS_PER_BATCH, cfg.SOLVER.MAX_ITER, tuple(cfg.SOLVER.STEPS)) == (
        16,
        270000,
        (210000, 250000),
    )
    assert cfg.SOLVER.BASE_LR == (0.01 if retinanet else 0.02)
    assert cfg.DATASETS.TRAIN == ("coco_2017_train",) and cfg.DATASETS.TEST == ("coco_2017_val",)
    # MicroNet's ImageNet preprocessing: RGB, torchvision's mean / std on 0..255.
    assert cfg.INPUT.FORMAT == "RGB"
    assert cfg.MODEL.PIXEL_MEAN == [123.675, 116.28, 103.53]
    assert cfg.MODEL.PIXEL_STD == [58.395, 57.12, 57.375]


def test_a_micronet_config_needs_add_micronet_config():
    cfg = get_cfg()
    with pytest.raises(KeyError, match="MICRONET"):
        cfg.merge_from_file(str(CONFIGS / "faster_rcnn_micronet_m3_fpn_3x.yaml"))


def _image(height, width, with_targets):
    sample = {
        "image": torch.randint(0, 256, (3, height, width), dtype=torch.uint8),
        "height": height,
        "width": width,
    }
    if with_targets:
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(
            torch.tensor([[10.0, 12.0, 60.0, 70.0], [40.0, 30.0, 110.0, 90.0]])
        )
        instances.gt_classes = torch.tensor([0, 2])
        sample["instances"] = instances
    return sample


@pytest.mark.parametrize("name", COCO_CONFIGS)
def test_training_step_and_inference_on_the_cpu(name):
    torch.manual_seed(0)
    cfg = _load(
        name,
        "MODEL.DEVICE",
        "cpu",
        "MODEL.MICRONET.WEIGHTS",
        "",  # no download in tests
        "MODEL.RPN.POST_NMS_TOPK_TRAIN",
        "200",
        "MODEL.RPN.POST_NMS_TOPK_TEST",
        "100",
    )
    model = build_model(cfg)
    expected_levels = (
        ["p3", "p4", "p5", "p6", "p7"]
        if name.startswith("retinanet")
        else ["p2", "p3", "p4", "p5", "p6"]
    )
    shapes = model.backbone.output_shape()
    assert list(shapes) == expected_levels
    assert [s.stride for s in shapes.values()] == [2 ** int(level[1:]) for level in expected_levels]
    assert model.backbone.size_divisibility == 32

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=1e-3, momentum=0.9)
    stride8 = model.backbone.bottom_up.micronet.stages[1][0]
    before = {k: v.detach().clone() for k, v in stride8.named_parameters()}
    stem_before = {
        k: v.detach().clone()
        for k, v in model.backbone.bottom_up.micronet.stem.state_dict().items()
    }
    model.train()
    with EventStorage():
        losses = model([_image(160, 224, True), _image(131, 197, True)])  # odd sizes: padded to 32
    total = sum(losses.values())
    assert torch.isfinite(total)
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert any(not torch.equal(before[k], v) for k, v in stride8.named_parameters())
    # FREEZE_AT 2 (the default): stem and stride-4 blocks do not move.
    for key, value in model.backbone.bottom_up.micronet.stem.state_dict().items():
        assert torch.equal(stem_before[key], value)

    model.eval()
    with torch.no_grad():
        outputs = model([_image(97, 143, False), _image(224, 161, False)])
    for output, size in zip(outputs, [(97, 143), (224, 161)]):
        instances = output["instances"]
        assert instances.image_size == size
        assert instances.pred_boxes.tensor.shape[1] == 4
        assert len(instances) == len(instances.scores) == len(instances.pred_classes)


@pytest.mark.parametrize(
    "builder, in_features, message",
    [
        ("build_micronet_fpn", ["stride8", "stride16"], "must end with 'stride32'"),
        (
            "build_micronet_fpn",
            ["res2", "res3", "res4", "res5"],
            "names \\['res2', 'res3', 'res4', 'res5'\\]",
        ),
        (
            "build_micronet_retinanet_fpn",
            ["stride4", "stride8", "stride16", "stride32"],
            "names \\['stride4'\\]",
        ),
    ],
)
def test_fpn_in_features_are_checked(builder, in_features, message):
    from detectron2.modeling import build_backbone

    cfg = _load("retinanet_micronet_m3_fpn_3x.yaml", "MODEL.MICRONET.WEIGHTS", "")
    cfg.MODEL.BACKBONE.NAME = builder
    cfg.MODEL.FPN.IN_FEATURES = in_features
    with pytest.raises(ValueError, match=message):
        build_backbone(cfg)
