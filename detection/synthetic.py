"""A small COCO-format detection set of drawn shapes, made on the spot (no download).

Each image (height and width drawn from ``image_sizes``) has a random background (flat colour,
linear gradient, stripes or smooth blotches, all with pixel noise) and one to three
non-overlapping filled objects of three kinds: axis-aligned squares, circles and rotated
triangles, each in a colour that stands out from the background under it. The set is written
like COCO 2017::

    <root>/train/000001.jpg ...            images of the train split
    <root>/val/000001.jpg ...              images of the val split
    <root>/annotations/instances_train.json
    <root>/annotations/instances_val.json
    <root>/settings.json                   the settings it was made with (a later call re-uses
                                           the set when they match)

Annotations carry ``bbox`` ([x, y, w, h] in pixels), ``area``, ``iscrowd`` = 0 and a polygon
``segmentation``; category ids are 1 (square), 2 (circle), 3 (triangle). The same settings and
seed always give the same set.

``register_shapes_dataset`` registers both splits with Detectron2's ``register_coco_instances``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

__all__ = [
    "CATEGORIES",
    "ShapesDataset",
    "make_shapes_dataset",
    "register_shapes_dataset",
]

CATEGORIES = (
    {"id": 1, "name": "square", "supercategory": "shape"},
    {"id": 2, "name": "circle", "supercategory": "shape"},
    {"id": 3, "name": "triangle", "supercategory": "shape"},
)
_SETTINGS_FILE = "settings.json"


@dataclass(frozen=True)
class ShapesDataset:
    """Where a generated set lies: one (COCO json, image folder) pair per split."""

    root: Path
    train_json: Path
    train_images: Path
    val_json: Path
    val_images: Path


@dataclass(frozen=True)
class _Settings:
    num_train: int
    num_val: int
    min_height: int
    max_height: int
    min_width: int
    max_width: int
    min_object_size: int
    max_object_size: int
    max_objects: int
    seed: int
    version: int = 1  # bump when the drawing changes, so old sets on disk are re-made


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
) -> ShapesDataset:
    """Write the set under ``root`` (or re-use the one there if made with the same settings).

    ``image_height`` / ``image_width`` / ``object_size`` are inclusive (low, high) ranges in
    pixels; ``object_size`` is the side of a square, the diameter of a circle and the
    circumscribed diameter of a triangle. Raises ``ValueError`` for settings that cannot work
    and ``FileExistsError`` when ``root`` holds something else.
    """
    settings = _Settings(
        num_train=num_train, num_val=num_val,
        min_height=image_height[0], max_height=image_height[1],
        min_width=image_width[0], max_width=image_width[1],
        min_object_size=object_size[0], max_object_size=object_size[1],
        max_objects=max_objects, seed=seed,
    )
    _check(settings)
    root = Path(root)
    dataset = ShapesDataset(
        root=root,
        train_json=root / "annotations" / "instances_train.json",
        train_images=root / "train",
        val_json=root / "annotations" / "instances_val.json",
        val_images=root / "val",
    )
    settings_path = root / _SETTINGS_FILE
    if settings_path.is_file():
        if json.loads(settings_path.read_text()) == asdict(settings):
            return dataset
        raise FileExistsError(
            f"{root} holds a shapes set made with other settings ({settings_path}); "
            "remove it or choose another folder"
        )
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty and holds no shapes set; choose another folder")

    rng = np.random.default_rng(seed)
    for split, count, json_path, image_dir in (
        ("train", num_train, dataset.train_json, dataset.train_images),
        ("val", num_val, dataset.val_json, dataset.val_images),
    ):
        _write_split(split, count, json_path, image_dir, settings, rng)
    settings_path.write_text(json.dumps(asdict(settings), indent=1))  # last: marks the set complete
    return dataset


def register_shapes_dataset(dataset: ShapesDataset, prefix: str = "shapes") -> tuple[str, str]:
    """Register the set's splits as ``<prefix>_train`` and ``<prefix>_val`` with Detectron2.

    Uses ``detectron2.data.datasets.register_coco_instances``, so ``COCOEvaluator`` scores the
    val split against its json. Registering the same files under the same names again is a
    no-op; the same names for other files is an error. Returns the two names.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    names = []
    for split, json_path, image_dir in (
        ("train", dataset.train_json, dataset.train_images),
        ("val", dataset.val_json, dataset.val_images),
    ):
        name = f"{prefix}_{split}"
        if name in DatasetCatalog.list():
            registered = MetadataCatalog.get(name).get("json_file", None)
            if registered != str(json_path):
                raise ValueError(
                    f"dataset name {name!r} is already registered for {registered}, not {json_path}"
                )
        else:
            register_coco_instances(name, {}, str(json_path), str(image_dir))
        names.append(name)
    return names[0], names[1]


def _check(settings: _Settings) -> None:
    if settings.num_train < 1 or settings.num_val < 1:
        raise ValueError(f"need at least one train and one val image, got {settings}")
    if not 1 <= settings.max_objects <= 8:
        raise ValueError(f"max_objects must be in 1..8, got {settings.max_objects}")
    low, high = settings.min_object_size, settings.max_object_size
    if not 8 <= low <= high:
        raise ValueError(f"object_size must be a range (low, high) with 8 <= low <= high, got {(low, high)}")
    if settings.min_height > settings.max_height or settings.min_width > settings.max_width:
        raise ValueError("image_height and image_width must be ranges (low, high) with low <= high")
    if min(settings.min_height, settings.min_width) < 2 * high:
        raise ValueError(
            f"images ({settings.min_height}x{settings.min_width} at least) must be twice as large "
            f"as the largest object ({high})"
        )


def _write_split(split, count, json_path, image_dir, settings, rng) -> None:
    image_dir.mkdir(parents=True, exist_ok=True)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, count + 1):
        height = int(rng.integers(settings.min_height, settings.max_height + 1))
        width = int(rng.integers(settings.min_width, settings.max_width + 1))
        background = _background(height, width, rng)
        canvas = Image.fromarray(background)
        draw = ImageDraw.Draw(canvas)
        boxes = []
        for _ in range(int(rng.integers(1, settings.max_objects + 1))):
            placed = _place_object(height, width, boxes, settings, rng)
            if placed is None:
                continue
            category_id, polygon, box = placed
            x0, y0, x1, y1 = (int(v) for v in box)
            under = background[max(y0, 0):y1 + 1, max(x0, 0):x1 + 1].reshape(-1, 3).mean(axis=0)
            draw.polygon([tuple(p) for p in polygon], fill=_contrasting_colour(under, rng))
            boxes.append(box)
            xs, ys = polygon[:, 0], polygon[:, 1]
            bbox = [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())]
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": [round(v, 2) for v in bbox],
                "area": round(_polygon_area(polygon), 2),
                "iscrowd": 0,
                "segmentation": [[round(float(v), 2) for v in polygon.reshape(-1)]],
            })
        pixels = np.asarray(canvas, dtype=np.float32)
        pixels += rng.normal(0.0, 6.0, size=pixels.shape)  # sensor noise over objects too
        file_name = f"{image_id:06d}.jpg"
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(image_dir / file_name, quality=92)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
    coco = {
        "info": {"description": f"micronet_backbones generated shapes, {split} split"},
        "images": images,
        "annotations": annotations,
        "categories": list(CATEGORIES),
    }
    json_path.write_text(json.dumps(coco))


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
        stripe = (np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period) > 0)
        image = np.where(stripe[..., None], base, other)
    else:  # smooth blotches: coarse random colours, upsampled
        coarse = rng.uniform(0, 255, size=(int(rng.integers(3, 7)), int(rng.integers(3, 7)), 3))
        image = np.asarray(
            Image.fromarray(coarse.astype(np.uint8)).resize((width, height), Image.BICUBIC), dtype=np.float64
        )
    image = image + rng.normal(0.0, rng.uniform(4, 20), size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def _place_object(height, width, boxes, settings, rng, tries: int = 30):
    """A (category_id, polygon (P, 2) float array, box (x0, y0, x1, y1)) clear of ``boxes``."""
    for _ in range(tries):
        category_id = int(rng.integers(1, 4))
        size = rng.uniform(settings.min_object_size, settings.max_object_size)
        cx = rng.uniform(size / 2 + 1, width - size / 2 - 1)
        cy = rng.uniform(size / 2 + 1, height - size / 2 - 1)
        if category_id == 1:  # axis-aligned square
            h = size / 2
            polygon = np.array([[cx - h, cy - h], [cx + h, cy - h], [cx + h, cy + h], [cx - h, cy + h]])
        elif category_id == 2:  # circle, as a 32-gon
            angles = np.linspace(0, 2 * math.pi, 32, endpoint=False)
            polygon = np.stack([cx + size / 2 * np.cos(angles), cy + size / 2 * np.sin(angles)], axis=1)
        else:  # equilateral triangle, rotated at random
            angles = rng.uniform(0, 2 * math.pi) + np.array([0, 2 * math.pi / 3, 4 * math.pi / 3])
            polygon = np.stack([cx + size / 2 * np.cos(angles), cy + size / 2 * np.sin(angles)], axis=1)
        box = (*polygon.min(axis=0), *polygon.max(axis=0))
        margin = 4
        if all(box[2] + margin < b[0] or b[2] + margin < box[0] or box[3] + margin < b[1] or b[3] + margin < box[1]
               for b in boxes):
            return category_id, polygon, box
    return None


def _contrasting_colour(under: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """A random RGB colour at least 100 away (Euclidean, 0..255) from the mean colour ``under``."""
    for _ in range(100):
        colour = rng.uniform(0, 255, size=3)
        if np.linalg.norm(colour - under) >= 100:
            return tuple(int(c) for c in colour)
    return tuple(int(c) for c in np.where(under > 127, 0, 255))  # the opposite corner


def _polygon_area(polygon: np.ndarray) -> float:
    x, y = polygon[:, 0], polygon[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))
