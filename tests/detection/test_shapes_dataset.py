"""The generated COCO-format shapes set: valid COCO, deterministic, re-used, registered with Detectron2."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from PIL import Image

from micronet_backbones.synthetic.shapes import CATEGORIES, make_shapes_dataset


@pytest.fixture(scope="module")
def small_set(tmp_path_factory):
    return make_shapes_dataset(
        tmp_path_factory.mktemp("shapes") / "set", num_train=12, num_val=4, seed=3
    )


def test_the_set_is_valid_coco_with_boxes_inside_the_images(small_set):
    pycocotools_coco = pytest.importorskip("pycocotools.coco")
    for json_path, image_dir, count in (
        (small_set.train.ann_file, small_set.train.image_dir, 12),
        (small_set.val.ann_file, small_set.val.image_dir, 4),
    ):
        with contextlib.redirect_stdout(io.StringIO()):
            coco = pycocotools_coco.COCO(str(json_path))
        assert len(coco.getImgIds()) == count
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [
            "square",
            "circle",
            "triangle",
        ]
        for image in coco.loadImgs(coco.getImgIds()):
            with Image.open(image_dir / image["file_name"]) as picture:
                assert picture.size == (image["width"], image["height"])
            annotations = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
            assert 1 <= len(annotations) <= 3
            for a in annotations:
                x, y, w, h = a["bbox"]
                assert 0 <= x and 0 <= y and x + w <= image["width"] and y + h <= image["height"]
                assert 20 <= w <= 90 and 20 <= h <= 90
                assert 0 < a["area"] <= w * h * 1.001 and a["iscrowd"] == 0
                assert a["category_id"] in {c["id"] for c in CATEGORIES}


def test_same_seed_same_set_and_settings_are_checked(small_set, tmp_path):
    again = make_shapes_dataset(tmp_path / "again", num_train=12, num_val=4, seed=3)
    assert json.loads(again.train.ann_file.read_text()) == json.loads(
        small_set.train.ann_file.read_text()
    )
    first = np.asarray(Image.open(small_set.train.image_dir / "000001.jpg"))
    assert np.array_equal(first, np.asarray(Image.open(again.train.image_dir / "000001.jpg")))
    # Re-using a folder made with the same settings writes nothing; other settings are refused.
    stamp = again.train.ann_file.stat().st_mtime_ns
    make_shapes_dataset(tmp_path / "again", num_train=12, num_val=4, seed=3)
    assert again.train.ann_file.stat().st_mtime_ns == stamp
    with pytest.raises(FileExistsError, match="other settings"):
        make_shapes_dataset(tmp_path / "again", num_train=12, num_val=4, seed=4)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "something.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        make_shapes_dataset(tmp_path / "busy")
    with pytest.raises(ValueError, match="twice as large"):
        make_shapes_dataset(tmp_path / "tiny", image_height=(64, 64), image_width=(64, 64))


def test_registration_with_detectron2(small_set, tmp_path):
    pytest.importorskip("detectron2")
    from detectron2.data import DatasetCatalog, MetadataCatalog

    from micronet_backbones.detection.datasets import register_coco_set

    train, val = register_coco_set(small_set, prefix="shapes_test_registration")
    assert (train, val) == ("shapes_test_registration_train", "shapes_test_registration_val")
    records = DatasetCatalog.get(val)
    assert len(records) == 4 and all(r["annotations"] for r in records)
    assert MetadataCatalog.get(val).thing_classes == ["square", "circle", "triangle"]
    assert register_coco_set(small_set, prefix="shapes_test_registration") == (train, val)
    other = make_shapes_dataset(tmp_path / "other", num_train=2, num_val=2)
    with pytest.raises(ValueError, match="already registered"):
        register_coco_set(other, prefix="shapes_test_registration")
