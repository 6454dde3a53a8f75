"""Detector export: Detectron2's export path imports, the inference-form backbone, the tool's errors.

The acceptance check on trained detectors (TorchScript and ONNX against Detectron2's inference)
runs after the slow training tests (test_train_net_e2e.py, through export_checks.py): an
untrained detector's detections prove nothing.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

pytest.importorskip("detectron2")

from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import FrozenBatchNorm2d  # noqa: E402

from micronet_backbones.deploy import InferenceMicroNet  # noqa: E402
from micronet_backbones.detection import MicroNetBackbone, add_micronet_config  # noqa: E402
from micronet_backbones.detection.export import (  # noqa: E402
    OUTPUT_NAMES,
    exported_instances,
    load_detector,
    preprocess,
    use_inference_form,
)
from micronet_backbones.detection.export_cli import main as export_main  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
COCO_CONFIG = REPO_ROOT / "configs" / "detection" / "faster_rcnn_micronet_m3_fpn_3x.yaml"
RETINANET_CONFIG = REPO_ROOT / "configs" / "detection" / "retinanet_micronet_m3_fpn_3x.yaml"


def test_detectron2_export_imports_without_caffe2():
    """The installer's guard: detectron2 0.6 imported its caffe2 exporter unconditionally."""
    from detectron2.export import TracingAdapter, dump_torchscript_IR, scripting_with_instances

    assert callable(TracingAdapter) and callable(dump_torchscript_IR)
    assert callable(scripting_with_instances)
    assert importlib.util.find_spec("caffe2") is None  # the guard is what makes it import


def test_installed_detectron2_is_current():
    """An install from before the guard (an older PATCH_LEVEL) is what a re-run replaces."""
    spec = importlib.util.spec_from_file_location(
        "micronet_install_detectron2", REPO_ROOT / "tools" / "install" / "install_detectron2.py"
    )
    installer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(installer)
    assert installer.installed_state() in ("ours", "native"), "re-run `make setup`"


def _cfg(config: Path, *opts):
    cfg = get_cfg()
    add_micronet_config(cfg)
    cfg.merge_from_file(str(config))
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.MICRONET.WEIGHTS", "", *opts])
    return cfg


def _backbone_features(model, image):
    with torch.no_grad():
        images = model.preprocess_image([{"image": image}])
        return model.backbone(images.tensor)


@pytest.mark.parametrize(
    "config", [COCO_CONFIG, RETINANET_CONFIG], ids=["faster_rcnn", "retinanet"]
)
def test_inference_form_serves_the_frozen_bn_backbone_exactly(config, tmp_path):
    """COCO configs freeze the stem and stride-4 blocks with FrozenBN: still folded, exact."""
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    cfg = _cfg(config)
    torch.manual_seed(0)
    model = build_model(cfg)
    for module in model.modules():  # trained-like BN statistics, so folding is not trivial
        if isinstance(module, (torch.nn.BatchNorm2d, FrozenBatchNorm2d)):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    weights = tmp_path / "model.pth"
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model")
    cfg.MODEL.WEIGHTS = str(weights)
    built = load_detector(cfg, inference_form=False)
    fast = load_detector(cfg)
    backbone = next(m for m in fast.modules() if isinstance(m, MicroNetBackbone))
    assert isinstance(backbone.micronet, InferenceMicroNet)
    assert use_inference_form(fast) == 0  # already converted
    for height, width in ((160, 203), (97, 250)):  # padded to 32 inside the model
        image = torch.rand(3, height, width) * 255
        expected, actual = _backbone_features(built, image), _backbone_features(fast, image)
        assert expected.keys() == actual.keys()
        for name in expected:
            scale = expected[name].abs().max()
            assert ((actual[name] - expected[name]).abs().max() / scale).item() < 1e-5, name


def test_exported_instances_scale_to_the_original_image():
    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 100.0, 80.0]])
    outputs = (boxes, torch.tensor([2, 0]), torch.tensor([0.9, 0.4]), torch.tensor([80, 100]))
    instances = exported_instances(outputs, height=160, width=200)
    assert instances.image_size == (160, 200)
    torch.testing.assert_close(instances.pred_boxes.tensor, boxes * 2)
    assert instances.pred_classes.tolist() == [2, 0]
    assert len(OUTPUT_NAMES) == len(outputs)


def test_preprocess_resizes_as_the_config_says():
    cfg = _cfg(
        REPO_ROOT
        / "configs"
        / "detection"
        / "quickstart"
        / "faster_rcnn_micronet_m3_fpn_shapes.yaml"
    )
    image = (torch.rand(150, 300, 3) * 255).to(torch.uint8).numpy()
    inputs = preprocess(cfg, image)
    assert (inputs["height"], inputs["width"]) == (150, 300)
    assert tuple(inputs["image"].shape) == (3, 120, 240)  # shortest side 160, capped at 240 wide
    with pytest.raises(ValueError, match="BGR image"):
        preprocess(cfg, image[:, :, 0])


def test_export_tool_needs_weights_and_an_image(tmp_path):
    config = str(
        REPO_ROOT
        / "configs"
        / "detection"
        / "quickstart"
        / "faster_rcnn_micronet_m3_fpn_shapes.yaml"
    )
    common = ["--config-file", config, "--output", str(tmp_path / "out")]
    with pytest.raises(ValueError, match="MODEL.WEIGHTS is empty"):
        export_main([*common, "--sample-image", "x.png"])
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        export_main(
            [*common, "--sample-image", "x.png", "MODEL.WEIGHTS", str(tmp_path / "missing.pth")]
        )
    with pytest.raises(SystemExit):  # only Detectron2's tracing method is offered
        export_main([*common, "--sample-image", "x.png", "--export-method", "caffe2_tracing"])
