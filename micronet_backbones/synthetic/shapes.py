"""Drawn shapes for detection: squares, circles and triangles on varied backgrounds (COCO format).

Each image (height and width drawn from ``image_height`` / ``image_width``) has a random
background (flat colour, linear gradient, stripes or smooth blotches, all with pixel noise) and
one to ``max_objects`` non-overlapping filled objects of three kinds: axis-aligned squares,
circles and rotated triangles, each in a colour that stands out from the background under it,
then sensor noise over everything. Annotations carry ``bbox`` ([x, y, w, h] in pixels),
``area``, ``iscrowd`` = 0 and a polygon ``segmentation``; category ids are 1 (square),
2 (circle), 3 (triangle). Written by :func:`~.coco_writer.write_coco_set` (layout, seeding and
re-use there) as ``annotations/instances_<split>.json`` and JPEG images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from .coco_writer import CocoSet, Drawing, write_coco_set

__all__ = ["CATEGORIES", "make_shapes_dataset"]

CATEGORIES = (
    {"id": 1, "name": "square", "supercategory": "shape"},
    {"id": 2, "name": "circle", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
)
_SUB = 16  # fixed-point sub-pixel precision of cv2's polygon filling (4 bits)


@dataclass(frozen=True)
class _Settings:
    min_height: int
    max_height: int
    min_width: int
    max_width: int
    min_object_size: int
    max_object_size: int
    max_objects: int
    version: int = 2  # bump when the drawing changes, so old sets on disk are not re-used


def make_shapes_dataset(
    root: str | Path,
    *,
    num_train: int = 240,
    num_val: int = 40,
    image_height: tuple[int, int] = (208, 240),
    image_width: tuple[int, int] = (240, 288),
    object_size: tuple[int, int] = (28, 88),
    max_objects: int = 3,
    seed: int = 0,
) -> CocoSet:
    """Write the set under ``root`` (or re-use the one there if made with the same settings).

    ``image_height`` / ``image_width`` / ``object_size`` are inclusive (low, high) ranges in
    pixels; ``object_size`` is the side of a square, the diameter of a circle and the
    circumscribed diameter of a triangle. Raises ``ValueError`` for settings that cannot work
    and ``FileExistsError`` when ``root`` holds something else.
    """
    settings = _Settings(
        min_height=image_height[0], max_height=image_height[1],
        min_width=image_width[0], max_width=image_width[1],
        min_object_size=object_size[0], max_object_size=object_size[1],
        max_objects=max_objects,
    )  # fmt: skip
    _check(settings)
    return write_coco_set(
        root, partial(_draw_image, settings), categories=list(CATEGORIES),
        ann_prefix="instances", num_train=num_train, num_val=num_val, seed=seed,
        settings=asdict(settings), image_suffix=".jpg",
        description="micronet_backbones generated shapes",
    )  # fmt: skip


def _check(settings: _Settings) -> None:
    if not 1 <= settings.max_objects <= 8:
        raise ValueError(f"max_objects must be in 1..8, got {settings.max_objects}")
    low, high = settings.min_object_size, settings.max_object_size
    if not 8 <= low <= high:
        raise ValueError(
            f"object_size must be a range (low, high) with 8 <= low <= high, got {(low, high)}"
        )
    if settings.min_height > settings.max_height or settings.min_width > settings.max_width:
        raise ValueError("image_height and image_width must be ranges (low, high) with low <= high")
    if min(settings.min_height, settings.min_width) < 2 * high:
        raise ValueError(
            f"images ({settings.min_height}x{settings.min_width} at least) must be twice as large "
            f"as the largest object ({high})"
        )


def _draw_image(settings: _Settings, rng: np.random.Generator) -> Drawing:
    """One image with 1 .. ``max_objects`` shapes and their annotations."""
    height = int(rng.integers(settings.min_height, settings.max_height + 1))
    width = int(rng.integers(settings.min_width, settings.max_width + 1))
    background = _background(height, width, rng)
    canvas = background.copy()
    boxes, annotations = [], []
    for _ in range(int(rng.integers(1, settings.max_objects + 1))):
        placed = _place_object(height, width, boxes, settings, rng)
        if placed is None:
            continue
        category_id, polygon, box = placed
        x0, y0, x1, y1 = (int(v) for v in box)
        under = background[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1].reshape(-1, 3).mean(axis=0)
        points = np.round(polygon * _SUB).astype(np.int32)
        cv2.fillPoly(canvas, [points], _contrasting_colour(under, rng), cv2.LINE_8, 4)
        boxes.append(box)
        xs, ys = polygon[:, 0], polygon[:, 1]
        bbox = [float(xs.min()), float(ys.min()), float(np.ptp(xs)), float(np.ptp(ys))]
        annotations.append({
            "category_id": category_id,
            "bbox": [round(v, 2) for v in bbox],
            "area": round(_polygon_area(polygon), 2),
            "iscrowd": 0,
            "segmentation": [[round(float(v), 2) for v in polygon.reshape(-1)]],
        })  # fmt: skip
    pixels = canvas.astype(np.float32)
    pixels += rng.normal(0.0, 6.0, size=pixels.shape)  # sensor noise over objects too
    return Drawing(np.clip(pixels, 0, 255).astype(np.uint8), annotations)


def _background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(height, width, 3) uint8 background of one of four kinds, with pixel noise."""
    kind = rng.integers(4)
    base = rng.uniform(0, 255, size=3)
    if kind == 0:  # flat colour
        image = np.broadcast_to(base, (height, width, 3)).copy()
    elif kind == 1:  # linear gradient between two colours in a random direction
        other = rng.uniform(0, 255, size=3)
        angle = rng.uniform(0, 2 * math.pi)
        yy, xx = np.mgrid[0:height, 0:width]
        t = xx * math.cos(angle) + yy * math.sin(angle)
        t = (t - t.min()) / max(t.max() - t.min(), 1.0)
        image = base + t[..., None] * (other - base)
    elif kind == 2:  # stripes of two colours
        other = rng.uniform(0, 255, size=3)
        period = rng.uniform(8, 40)
        angle = rng.uniform(0, math.pi)
        yy, xx = np.mgrid[0:height, 0:width]
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period
        image = np.where((np.sin(phase) > 0)[..., None], base, other)
    else:  # smooth blotches: coarse random colours, upsampled
        coarse = rng.uniform(0, 255, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3))
        image = cv2.resize(
            coarse.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC
        ).astype(np.float64)
    image = image + rng.normal(0.0, rng.uniform(4, 20), size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _place_object(height, width, boxes, settings: _Settings, rng, tries: int = 30):
    """A (category_id, polygon (P, 2) float array, box (x0, y0, x1, y1)) clear of ``boxes``."""
    for _ in range(tries):
        category_id = int(rng.integers(1, 4))
        size = rng.uniform(settings.min_object_size, settings.max_object_size)
        cx = rng.uniform(size / 2 + 1, width - size / 2 - 1)
        cy = rng.uniform(size / 2 + 1, height - size / 2 - 1)
        if category_id == 1:  # axis-aligned square
            h = size / 2
            polygon = np.array(
                [[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]]
            )
        else:  # circle as a 32-gon; equilateral triangle rotated at random
            if category_id == 2:
                angles = np.linspace(0, 2 * math.pi, 32, endpoint=False)
            else:
                angles = rng.uniform(0, 2 * math.pi) + np.array([0, 2, 4]) * math.pi / 3
            polygon = np.stack([cx + size / 2 * np.cos(angles), cy + size / 2 * np.sin(angles)], 1)
        box = (*polygon.min(axis=0), *polygon.max(axis=0))
        if all(_apart(box, other, margin=4) for other in boxes):
            return category_id, polygon, box
    return None


def _apart(a, b, margin: float) -> bool:
    """Whether boxes (x0, y0, x1, y1) ``a`` and ``b`` are more than ``margin`` apart."""
    return (
        a[2] + margin < b[0] or b[2] + margin < a[0] or a[3] + margin < b[1] or b[3] + margin < a[1]
    )


def _contrasting_colour(under: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random colour at least 100 away (Euclidean, 0..255) from the mean colour ``under``."""
    for _ in range(100):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - under) >= 100:
            return tuple(int(c) for c in colour)
    return tuple(int(c) for c in np.where(under > 127, 0, 255))  # the opposite corner


def _polygon_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
