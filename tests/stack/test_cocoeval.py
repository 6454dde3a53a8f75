"""pycocotools' COCOeval scores a small made-up set: 1.0 when perfect, less when jittered."""

import contextlib
import io

import numpy as np
import pytest

pytest.importorskip("pycocotools")
from pycocotools.coco import COCO  # noqa: E402
from pycocotools.cocoeval import COCOeval  # noqa: E402


def _ground_truth(rng):
    images, annotations = [], []
    for image_id in range(1, 6):
        images.append({"id": image_id, "width": 200, "height": 150, "file_name": f"{image_id}.png"})
        for _ in range(3):
            w, h = rng.uniform(20, 60, size=2)
            x, y = rng.uniform(0, 200 - w), rng.uniform(0, 150 - h)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": int(rng.integers(1, 3)),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    coco = COCO()
    coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _bbox_ap(coco, detections):
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(detections), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[0]


def test_perfect_predictions_score_ap_one_and_jittered_ones_less():
    rng = np.random.default_rng(0)
    coco = _ground_truth(rng)
    perfect = [
        {
            "image_id": a["image_id"],
            "category_id": a["category_id"],
            "bbox": list(a["bbox"]),
            "score": 0.9,
        }
        for a in coco.dataset["annotations"]
    ]
    assert _bbox_ap(coco, perfect) == pytest.approx(1.0)

    jittered = []
    for det in perfect:
        x, y, w, h = det["bbox"]
        dx, dy = rng.normal(0, 0.15 * w), rng.normal(0, 0.15 * h)
        jittered.append({**det, "bbox": [x + dx, y + dy, w, h]})
    ap = _bbox_ap(coco, jittered)
    assert 0.0 < ap < 0.9
