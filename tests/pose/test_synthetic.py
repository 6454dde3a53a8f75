"""The generated COCO-keypoints set: format MMPose reads, deterministic, sane geometry."""

import json

import cv2
import numpy as np
import pytest

from micronet_backbones.synthetic.figures import (
    COCO_KEYPOINT_NAMES,
    draw_figure_image,
    make_coco_keypoints,
)


def test_written_set_is_coco_keypoints_and_deterministic(tmp_path):
    splits = make_coco_keypoints(tmp_path / "a", num_train=6, num_val=3, image_size=(96, 80))
    again = make_coco_keypoints(tmp_path / "b", num_train=6, num_val=3, image_size=(96, 80))
    for name, count in (("train", 6), ("val", 3)):
        split = getattr(splits, name)
        coco = json.loads(split.ann_file.read_text())
        assert coco == json.loads(getattr(again, name).ann_file.read_text())
        assert len(coco["images"]) == len(coco["annotations"]) == count
        category = coco["categories"][0]
        assert category["id"] == 1 and category["name"] == "person"
        assert (
            category["keypoints"] == list(COCO_KEYPOINT_NAMES) and len(category["skeleton"]) == 19
        )
        for image, ann in zip(coco["images"], coco["annotations"]):
            assert ann["image_id"] == image["id"] and ann["category_id"] == 1
            assert ann["iscrowd"] == 0 and ann["num_keypoints"] == 17
            pixels = cv2.imread(str(split.image_dir / image["file_name"]))
            assert pixels.shape == (80, 96, 3)
            np.testing.assert_array_equal(
                pixels, cv2.imread(str(getattr(again, name).image_dir / image["file_name"]))
            )
            keypoints = np.array(ann["keypoints"]).reshape(17, 3)
            assert (keypoints[:, 2] == 2).all()
            x, y, w, h = ann["bbox"]
            assert (keypoints[:, 0] >= x).all() and (keypoints[:, 0] <= x + w).all()
            assert (keypoints[:, 1] >= y).all() and (keypoints[:, 1] <= y + h).all()
            assert 0 < ann["area"] < w * h
            assert x >= 0 and y >= 0 and x + w <= 96 and y + h <= 80


def test_figures_vary_and_face_the_camera():
    rng = np.random.default_rng(0)
    annotations = [draw_figure_image(rng)[1] for _ in range(40)]
    keypoints = np.array([a["keypoints"] for a in annotations]).reshape(40, 17, 3)[..., :2]
    heights = np.array([a["bbox"][3] for a in annotations])
    assert heights.std() > 8  # varied scales
    assert keypoints[:, 0, 0].std() > 10  # varied positions
    # left/right pairs (shoulders, hips) on the image's right / left: the figure faces us
    for left, right in ((5, 6), (11, 12)):
        torso_up = keypoints[:, 5:7].mean(1) - keypoints[:, 11:13].mean(1)
        side = keypoints[:, left] - keypoints[:, right]
        # (up x side) > 0 in image coordinates (y down): the left joint is on the right
        cross = torso_up[:, 0] * side[:, 1] - torso_up[:, 1] * side[:, 0]
        assert (cross > 0).all()
    # varied poses: the wrists move a lot relative to the shoulders
    wrist_offsets = keypoints[:, 9] - keypoints[:, 5]
    assert wrist_offsets.std(0).min() > 5


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="num_train"):
        make_coco_keypoints(tmp_path, num_train=0)
    with pytest.raises(ValueError, match="image_size"):
        make_coco_keypoints(tmp_path, image_size=(16, 16))
