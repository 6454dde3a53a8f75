"""The export acceptance check, run on the detectors the slow tests train (test_train_net_e2e.py).

``assert_exports_match(config, weights, image_dir, output_dir)`` exports the trained detector
with ``tools/export_detector.py`` (tracing, MicroNet backbone in inference form) to TorchScript
and to ONNX, traced on one generated image, then runs both exported models on other generated
images (other sizes too) and compares each with Detectron2's own inference of the model as
trained (``model([{"image", "height", "width"}])``, same preprocessing): same number of
detections (at least one per image), same classes, boxes and scores to float tolerance.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import torch

from micronet_backbones.detection.export import (
    exported_instances,
    load_detector,
    load_exported,
    preprocess,
)
from micronet_backbones.detection.export_cli import main as export_main
from micronet_backbones.detection.training import build_config

NUM_IMAGES = 6
BOX_ATOL = 1e-3  # pixels (boxes are tens of pixels; float32 rounding gives ~1e-5)
SCORE_ATOL = 1e-5


class _Args:
    def __init__(self, config, weights):
        self.config_file = str(config)
        self.opts = ["MODEL.WEIGHTS", str(weights)]


def _assert_same_detections(actual, expected, where: str) -> None:
    """The same detections: each of Detectron2's pairs with one exported detection of the same
    class, box and score within tolerance. Matched as sets, not by position: two scores equal
    to float rounding may come out of NMS / top-k in either order."""
    assert len(actual) == len(expected), f"{where}: {len(actual)} != {len(expected)} detections"
    boxes, classes, scores = actual.pred_boxes.tensor, actual.pred_classes, actual.scores
    free = torch.ones(len(actual), dtype=torch.bool)
    for box, cls, score in zip(expected.pred_boxes.tensor, expected.pred_classes, expected.scores):
        distance = (boxes - box).abs().amax(dim=1)
        distance[~free | (classes != cls)] = float("inf")
        best = int(distance.argmin())
        assert distance[best] <= BOX_ATOL, (
            f"{where}: no exported box for {box.tolist()} ({int(cls)})"
        )
        assert abs(scores[best] - score) <= SCORE_ATOL, f"{where}: score {scores[best]} != {score}"
        free[best] = False


def assert_exports_match(config: Path, weights: Path, image_dir: Path, output_dir: Path) -> dict:
    images = sorted(Path(image_dir).glob("*.*"))[: NUM_IMAGES + 1]
    sample, others = images[0], images[1:]
    paths = {
        fmt: export_main(
            [
                "--format",
                fmt,
                "--config-file",
                str(config),
                "--sample-image",
                str(sample),
                "--output",
                str(output_dir / fmt),
                "MODEL.WEIGHTS",
                str(weights),
            ]
        )
        for fmt in ("torchscript", "onnx")
    }
    assert paths["torchscript"].name == "model.ts" and paths["onnx"].name == "model.onnx"

    cfg = build_config(_Args(config, weights))
    reference = load_detector(cfg, inference_form=False)  # Detectron2's model as trained
    runs = {fmt: load_exported(path) for fmt, path in paths.items()}
    sizes, counts = set(), []
    for path in [sample, *others]:
        inputs = preprocess(cfg, cv2.imread(str(path)))
        sizes.add(tuple(inputs["image"].shape[1:]))
        with torch.no_grad():
            expected = reference([inputs])[0]["instances"]
        assert len(expected) >= 1, f"the trained detector finds nothing in {path.name}"
        counts.append(len(expected))
        for fmt, run in runs.items():
            actual = exported_instances(run(inputs["image"]), inputs["height"], inputs["width"])
            _assert_same_detections(actual, expected, f"{fmt}, {path.name}")
    assert len(sizes) > 1, "the check must cover more than the traced input size"
    return {"images": len(counts), "detections": counts, "sizes": sorted(sizes)}
