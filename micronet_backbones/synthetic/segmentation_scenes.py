"""A small generated semantic-segmentation set: shapes of four classes on textured backgrounds.

Every image holds two to six objects of four classes (disc, square, triangle, star) at random
positions, rotations and sizes, from small (a few pixels across, about one stride-8 cell) to
about half the image, drawn in the order they were sampled so that later ones occlude earlier
ones. Backgrounds are textured: a colour gradient, sinusoidal stripes at a random angle and
period, a few soft blotches and pixel noise, all in muted colours. Each class has its own hue
(jittered in hue, saturation and brightness), so that a small network trained for a few minutes
learns a useful segmentation from colour and shape together.

Written by the package's one writer (:func:`~micronet_backbones.synthetic.coco_writer.write_coco_set`:
layout, seeding, re-use), with the label map as the drawing's extra ``labels``: one class id
per pixel (0 background, 1 disc, 2 square, 3 triangle, 4 star) in a single-channel PNG, the
layout MMSegmentation's ``BaseSegDataset`` reads with ``img_path='images/<split>'``,
``seg_map_path='labels/<split>'``, ``img_suffix='.png'``, ``seg_map_suffix='.png'`` and
``reduce_zero_label=False``::

    root/images/train/000001.png ...           BGR images
    root/labels/train/000001.png ...           uint8 label maps of the same size
    root/images/val/...  root/labels/val/...
    root/annotations/instances_{train,val}.json  COCO boxes of the visible part of each object
    root/settings.json
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from .coco_writer import CocoSet, Drawing, write_coco_set

__all__ = [
    "CLASSES",
    "LABELS",
    "PALETTE",
    "draw_scene",
    "make_segmentation_scenes",
]

CLASSES = ("background", "disc", "square", "triangle", "star")
LABELS = "labels"  # the writer's extra map: <root>/labels/<split>/<stem>.png
# Colours of the classes in drawn label maps (RGB, MMSegmentation's ``palette``).
PALETTE = ((0, 0, 0), (220, 60, 60), (60, 200, 80), (70, 110, 230), (235, 200, 40))

# Hue of each object class in OpenCV's 0-180 scale (red, green, blue, yellow).
_HUES = {1: 0, 2: 60, 3: 115, 4: 28}
_VERSION = 1  # bump when the drawing changes (the writer re-uses sets of equal settings)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A muted textured background (H, W, 3) float32 in BGR: gradient, stripes, blotches, noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    start, end = rng.uniform(60, 190, size=(2, 3)).astype(np.float32)
    angle = rng.uniform(0, math.pi)
    along = (xx * math.cos(angle) + yy * math.sin(angle)) / max(height, width)
    image = start + (end - start) * along[..., None]
    stripe_angle = rng.uniform(0, math.pi)
    period = rng.uniform(4, 24)
    phase = (xx * math.cos(stripe_angle) + yy * math.sin(stripe_angle)) * (2 * math.pi / period)
    image += rng.uniform(8, 30) * np.sin(phase)[..., None]
    for _ in range(int(rng.integers(1, 4))):
        cy, cx = rng.uniform(0, height), rng.uniform(0, width)
        sigma = rng.uniform(0.08, 0.3) * max(height, width)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma**2))
        image += blob[..., None] * rng.uniform(-40, 40, size=3).astype(np.float32)
    # mute the colours: pull every pixel towards its own grey level
    grey = image.mean(axis=2, keepdims=True)
    image = grey + 0.5 * (image - grey)
    return image + rng.normal(0.0, 8.0, size=image.shape).astype(np.float32)


def _class_colour(rng: np.random.Generator, label: int) -> tuple[int, int, int]:
    """A BGR colour of ``label``'s hue, jittered in hue, saturation and value."""
    hue = (_HUES[label] + rng.integers(-6, 7)) % 180
    hsv = np.uint8([[[hue, rng.integers(150, 256), rng.integers(140, 256)]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def _polygon(label: int, centre: np.ndarray, radius: float, angle: float) -> np.ndarray:
    """Vertices (V, 2) of a square, triangle or five-pointed star of circumradius ``radius``."""
    if label == 2:
        angles, radii = np.arange(4) * (math.pi / 2), np.full(4, radius)
    elif label == 3:
        angles, radii = np.arange(3) * (2 * math.pi / 3), np.full(3, radius)
    else:  # star: outer and inner vertices alternate
        angles = np.arange(10) * (math.pi / 5)
        radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    angles = angles + angle
    return centre + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


def draw_scene(
    rng: np.random.Generator,
    image_size: tuple[int, int] = (128, 128),
    num_objects: tuple[int, int] = (2, 6),
    radius_range: tuple[float, float] = (0.03, 0.3),
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (BGR image (H, W, 3) uint8, label map (H, W) uint8 with ids of ``CLASSES``).

    Args:
        rng: the random generator (the only source of randomness).
        image_size: (width, height).
        num_objects: inclusive range of the number of objects.
        radius_range: object circumradius as a fraction of min(H, W), drawn log-uniformly so
            that small objects are as frequent as large ones.
    """
    width, height = image_size
    image = _background(rng, height, width)
    labels = np.zeros((height, width), np.uint8)
    shade = np.zeros((height, width), np.float32)  # per-pixel brightness texture on objects
    shade += rng.normal(0.0, 10.0, size=shade.shape).astype(np.float32)
    low, high = (math.log(r * min(height, width)) for r in radius_range)
    for _ in range(int(rng.integers(num_objects[0], num_objects[1] + 1))):
        label = int(rng.integers(1, len(CLASSES)))
        radius = math.exp(rng.uniform(low, high))
        centre = rng.uniform([0, 0], [width, height])
        mask = np.zeros((height, width), np.uint8)
        if label == 1:
            cv2.circle(
                mask,
                (int(round(centre[0])), int(round(centre[1]))),
                max(1, int(round(radius))),
                1,
                -1,
            )
        else:
            points = _polygon(label, centre, radius, rng.uniform(0, 2 * math.pi))
            cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
        inside = mask.astype(bool)
        image[inside] = np.asarray(_class_colour(rng, label), np.float32) + shade[inside, None]
        labels[inside] = label
    return np.clip(image, 0, 255).astype(np.uint8), labels


def _annotations(labels: np.ndarray) -> list[dict]:
    """COCO annotations of the visible regions of each class: one per connected component,
    ``bbox`` [x, y, w, h] and ``area`` (pixels)."""
    annotations = []
    for label in range(1, len(CLASSES)):
        count, _, stats, _ = cv2.connectedComponentsWithStats((labels == label).astype(np.uint8))
        for x, y, w, h, area in stats[1:count].tolist():
            annotations.append({"category_id": label, "bbox": [x, y, w, h], "area": area})
    return annotations


def _draw(image_size: tuple[int, int], rng: np.random.Generator) -> Drawing:
    image, labels = draw_scene(rng, image_size)
    return Drawing(image, _annotations(labels), extras={LABELS: labels})


def make_segmentation_scenes(
    root: str | Path,
    *,
    num_train: int = 300,
    num_val: int = 60,
    image_size: tuple[int, int] = (128, 128),
    seed: int = 0,
) -> CocoSet:
    """Write the set under ``root`` (or re-use the one there if made with the same settings).

    ``image_size`` is (width, height), at least 32 x 32. Returns the writer's ``CocoSet``; the
    label maps of a split are in ``split.extra_dir("labels")``. Raises ``ValueError`` for
    settings that cannot work and ``FileExistsError`` when ``root`` holds something else.
    """
    if min(image_size) < 32:
        raise ValueError(f"image_size (width, height) must be at least 32 x 32, got {image_size}")
    categories = [
        {"id": label, "name": name, "supercategory": "shape"}
        for label, name in enumerate(CLASSES)
        if label
    ]
    return write_coco_set(
        root, partial(_draw, tuple(image_size)), categories=categories, ann_prefix="instances",
        num_train=num_train, num_val=num_val, seed=seed,
        settings={"image_size": list(image_size), "version": _VERSION, "task": "segmentation"},
        image_suffix=".png", description="micronet_backbones generated segmentation scenes",
    )  # fmt: skip
