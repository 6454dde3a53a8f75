"""Detectron2 0.6 as installed by `make setup` builds and trains a model-zoo model on the CPU."""

import pytest
import torch

detectron2 = pytest.importorskip("detectron2")
from detectron2 import model_zoo  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from detectron2.structures import Boxes, Instances  # noqa: E402
from detectron2.utils.events import EventStorage  # noqa: E402


def _faster_rcnn_r50_fpn():
    cfg = get_cfg()
    cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 100
    return cfg, build_model(cfg)


def _sample(height, width, with_targets):
    sample = {
        "image": torch.randint(0, 255, (3, height, width), dtype=torch.uint8).float(),
        "height": height,
        "width": width,
    }
    if with_targets:
        instances = Instances((height, width))
        instances.gt_boxes = Boxes(
            torch.tensor([[10.0, 12.0, 60.0, 70.0], [40.0, 30.0, 120.0, 90.0]])
        )
        instances.gt_classes = torch.tensor([0, 2])
        sample["instances"] = instances
    return sample


def test_faster_rcnn_r50_fpn_trains_one_step_and_infers_on_cpu():
    torch.manual_seed(0)
    cfg, model = _faster_rcnn_r50_fpn()
    assert cfg.MODEL.BACKBONE.NAME == "build_resnet_fpn_backbone"
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    model.train()
    with EventStorage():
        losses = model([_sample(128, 160, True), _sample(144, 128, True)])
    assert {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
    total = sum(losses.values())
    assert torch.isfinite(total)
    before = model.roi_heads.box_predictor.cls_score.weight.detach().clone()
    optimizer.zero_grad()
    total.backward()
    optimizer.step()
    assert not torch.equal(before, model.roi_heads.box_predictor.cls_score.weight)

    model.eval()
    with torch.no_grad():
        (output,) = model([_sample(128, 160, False)])
    instances = output["instances"]
    assert instances.image_size == (128, 160)
    assert instances.pred_boxes.tensor.shape[1] == 4


def test_native_only_ops_say_detectron2_has_no_native_ops():
    import detectron2._C as native

    if getattr(native, "NATIVE_OPS", True):
        pytest.skip("this detectron2 was built with its native ops")
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    boxes = torch.tensor([[10.0, 10.0, 4.0, 4.0, 0.0]])
    with pytest.raises(RuntimeError, match="installed without native ops"):
        pairwise_iou_rotated(boxes, boxes)
