"""The one writer of generated COCO sets: layout, numbering, extras, per-split seeding, re-use."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from micronet_backbones.synthetic import Drawing, split_rng, write_coco_set

CATEGORIES = [{"id": 1, "name": "box", "supercategory": "thing"}]


def _draw(rng: np.random.Generator) -> Drawing:
    """A random-size grey image with 0-2 boxes, and a label map of them as an extra."""
    height, width = int(rng.integers(20, 40)), int(rng.integers(20, 40))
    image = np.full((height, width, 3), int(rng.integers(0, 256)), np.uint8)
    labels = np.zeros((height, width), np.uint8)
    annotations = []
    for _ in range(int(rng.integers(0, 3))):
        x, y = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        image[y : y + 8, x : x + 8] = 255
        labels[y : y + 8, x : x + 8] = 1
        annotations.append({"category_id": 1, "bbox": [x, y, 8, 8], "area": 64})
    return Drawing(image, annotations, extras={"labels": labels})


def _write(root, num_train=3, seed=5, **kw):
    kw = {"settings": {"version": 1}, **kw}
    return write_coco_set(root, _draw, categories=CATEGORIES, ann_prefix="things",
                          num_train=num_train, num_val=2, seed=seed, **kw)  # fmt: skip


def test_layout_numbering_and_extras(tmp_path):
    data = _write(tmp_path / "set")
    assert data.train.ann_file == tmp_path / "set" / "annotations" / "things_train.json"
    assert data.val.image_dir == tmp_path / "set" / "images" / "val"
    for split, count in ((data.train, 3), (data.val, 2)):
        coco = json.loads(split.ann_file.read_text())
        assert [image["id"] for image in coco["images"]] == list(range(1, count + 1))
        assert [a["id"] for a in coco["annotations"]] == list(
            range(1, len(coco["annotations"]) + 1)
        )
        assert coco["categories"] == CATEGORIES and split.num_images == count
        for image in coco["images"]:
            pixels = cv2.imread(str(split.image_dir / image["file_name"]))
            assert pixels.shape == (image["height"], image["width"], 3)
            labels = cv2.imread(str(split.extra_dir("labels") / f"{image['id']:06d}.png"), -1)
            assert labels.shape == (image["height"], image["width"])
            boxes = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
            covered = np.zeros_like(labels)
            for x, y, w, h in (a["bbox"] for a in boxes):
                covered[y : y + h, x : x + w] = 1
            np.testing.assert_array_equal(labels, covered)
            assert all(a["iscrowd"] == 0 for a in boxes)


def test_each_split_has_its_own_stream(tmp_path):
    """The val split does not depend on the size of the train split, and follows split_rng."""
    small, large = _write(tmp_path / "a", num_train=1), _write(tmp_path / "b", num_train=4)
    assert small.val.ann_file.read_text() == large.val.ann_file.read_text()
    first_val = _draw(split_rng(5, "val"))
    written = cv2.imread(str(small.val.image_dir / "000001.png"))
    np.testing.assert_array_equal(written, first_val.image)
    other_seed = _write(tmp_path / "c", seed=6)
    first = [cv2.imread(str(d.train.image_dir / "000001.png")) for d in (small, other_seed)]
    assert first[0].shape != first[1].shape or not np.array_equal(*first)


def test_reuse_and_refusals(tmp_path):
    data = _write(tmp_path / "set")
    stamp = data.val.ann_file.stat().st_mtime_ns
    assert _write(tmp_path / "set") == data
    assert data.val.ann_file.stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="other settings"):
        _write(tmp_path / "set", settings={"version": 2})
    with pytest.raises(ValueError, match="writer's keys"):
        _write(tmp_path / "new", settings={"seed": 1})
    with pytest.raises(ValueError, match="image_suffix"):
        _write(tmp_path / "new", image_suffix=".bmp")
    with pytest.raises(ValueError, match="num_train"):
        _write(tmp_path / "new", num_train=0)
    assert not (tmp_path / "new").exists()  # nothing half-written
