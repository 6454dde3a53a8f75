"""The generated segmentation set: layout, labels, class coverage, object sizes, determinism."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from micronet_backbones.synthetic.segmentation_scenes import (
    CLASSES,
    LABELS,
    draw_scene,
    make_segmentation_scenes,
)


def test_written_layout_is_what_base_seg_dataset_reads(tmp_path):
    scenes = make_segmentation_scenes(tmp_path, num_train=6, num_val=3, seed=1, image_size=(80, 48))
    assert scenes.train.num_images == 6 and scenes.val.num_images == 3
    for split in (scenes.train, scenes.val):
        images = sorted(p.name for p in split.image_dir.glob("*.png"))
        masks = sorted(p.name for p in split.extra_dir(LABELS).glob("*.png"))
        assert images == masks and len(images) == split.num_images
        assert split.extra_dir(LABELS) == tmp_path / "labels" / split.name
        image = cv2.imread(str(split.image_dir / images[0]), cv2.IMREAD_UNCHANGED)
        labels = cv2.imread(str(split.extra_dir(LABELS) / masks[0]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (48, 80, 3) and image.dtype == np.uint8
        assert labels.shape == (48, 80) and labels.dtype == np.uint8
        assert labels.max() < len(CLASSES)
        # the COCO file's boxes cover exactly the labelled pixels
        coco = json.loads(split.ann_file.read_text())
        first = [a for a in coco["annotations"] if a["image_id"] == 1]
        assert sum(a["area"] for a in first) == int((labels > 0).sum())


def test_mmsegmentation_reads_the_set(small_scenes):
    from mmseg.registry import DATASETS

    dataset = DATASETS.build(
        dict(
            type="BaseSegDataset",
            data_root=str(small_scenes),
            data_prefix=dict(img_path="images/val", seg_map_path="labels/val"),
            img_suffix=".png",
            seg_map_suffix=".png",
            metainfo=dict(classes=CLASSES),
            pipeline=[
                dict(type="LoadImageFromFile"),
                dict(type="LoadAnnotations"),
                dict(type="PackSegInputs"),
            ],
        )
    )
    assert len(dataset) == 8
    sample = dataset[0]["data_samples"]
    assert tuple(sample.gt_sem_seg.data.shape) == (1, 64, 64)


def test_every_class_and_small_and_large_objects_occur():
    rng = np.random.default_rng(0)
    counts = np.zeros(len(CLASSES), np.int64)
    sizes = []
    for _ in range(60):
        image, labels = draw_scene(rng, (128, 128))
        counts += np.bincount(labels.ravel(), minlength=len(CLASSES))
        for label in range(1, len(CLASSES)):
            n, _, stats, _ = cv2.connectedComponentsWithStats((labels == label).astype(np.uint8))
            sizes += list(stats[1:, cv2.CC_STAT_AREA])
    assert (counts > 0).all()
    assert 0.5 < counts[0] / counts.sum() < 0.95  # background dominates but objects are many
    sizes = np.array(sizes)
    assert (sizes <= 64).sum() >= 20  # small: about one 8x8 cell of the stride-8 map
    assert (sizes >= 2000).sum() >= 10  # large: an eighth of the image or more


def test_backgrounds_are_textured_not_flat():
    image, labels = draw_scene(np.random.default_rng(3), (128, 128))
    background = image[labels == 0].astype(np.float32)
    assert background.std(axis=0).min() > 8


def test_same_seed_same_set_and_val_independent_of_train_size(tmp_path):
    def make(name, num_train, seed):
        return make_segmentation_scenes(
            tmp_path / name, num_train=num_train, num_val=2, seed=seed, image_size=(32, 32)
        )

    a, b, c = make("a", 2, 5), make("b", 4, 5), make("c", 2, 6)
    for name in ("000001.png", "000002.png"):
        for folder in (a.val.image_dir, a.val.extra_dir(LABELS)):
            other = b.root / folder.relative_to(a.root)
            assert (folder / name).read_bytes() == (other / name).read_bytes()
    assert (c.val.image_dir / "000001.png").read_bytes() != (
        a.val.image_dir / "000001.png"
    ).read_bytes()


def test_bad_sizes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="num_train"):
        make_segmentation_scenes(tmp_path, num_train=0)
    with pytest.raises(ValueError, match="32 x 32"):
        make_segmentation_scenes(tmp_path, image_size=(16, 64))
