"""The one writer of generated COCO-format data sets: splits, seeding, re-use, files on disk.

A task supplies a *drawer*: a function that takes a NumPy random generator and returns one
:class:`Drawing` (an image and its COCO annotations, optionally extra per-image maps such as a
segmentation label map). :func:`write_coco_set` calls it ``num_train`` then ``num_val`` times and
writes this layout, the one the repository's MMPose configs and Detectron2's
``register_coco_instances`` read::

    <root>/images/train/000001.<suffix> ...     images of the train split (1-based, as image ids)
    <root>/images/val/000001.<suffix> ...       images of the val split
    <root>/<extra>/train/000001.png ...         one folder per extra map name, if the drawer
                                                returns extras (lossless PNG, same stem)
    <root>/annotations/<prefix>_train.json      COCO json of each split
    <root>/annotations/<prefix>_val.json
    <root>/settings.json                        what the set was made with; written last, so a
                                                set without it is incomplete

Policies, the same for every task:

* **Seeding**: split number ``i`` (train 0, val 1) draws from ``np.random.default_rng(seed + i)``
  (:func:`split_rng`), so a split does not depend on the size of the other one.
* **Re-use**: a folder whose ``settings.json`` equals the requested settings is re-used as it is
  (nothing is written); other settings raise ``FileExistsError``, as does a non-empty folder
  without ``settings.json``. The settings are the writer's (counts, seed, prefix, suffix) plus
  the drawer's own, which must include everything the drawing depends on (and a version
  number to bump when the drawing code changes).
* **Return**: a :class:`CocoSet` (root + one :class:`CocoSplit` per split).

Images are (H, W, 3) uint8 arrays in OpenCV's BGR order, written with ``cv2.imwrite`` (JPEG at
quality 92 for ``.jpg``, lossless otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "SETTINGS_FILE",
    "SPLITS",
    "CocoSet",
    "CocoSplit",
    "Drawing",
    "split_rng",
    "write_coco_set",
]

SETTINGS_FILE = "settings.json"
SPLITS = ("train", "val")  # split i draws from default_rng(seed + i)
_JPEG_QUALITY = 92


@dataclass(frozen=True)
class Drawing:
    """What a drawer returns for one image.

    Attributes:
        image: (H, W, 3) uint8, BGR.
        annotations: COCO annotation dicts of this image without ``id`` and ``image_id`` (the
            writer numbers them); ``iscrowd`` defaults to 0.
        extras: name -> (H, W) or (H, W, C) uint8 map written as
            ``<root>/<name>/<split>/<stem>.png`` beside the image (e.g. a label map).
    """

    image: np.ndarray
    annotations: list[dict]
    extras: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class CocoSplit:
    """One written split: its image folder, annotation file and number of images."""

    name: str
    image_dir: Path
    ann_file: Path
    num_images: int

    def extra_dir(self, name: str) -> Path:
        """The folder of the drawer's extra map ``name`` for this split (``<root>/<name>/<split>``)."""
        return self.image_dir.parents[1] / name / self.name


@dataclass(frozen=True)
class CocoSet:
    """A written (or re-used) set: its root folder and its two splits."""

    root: Path
    train: CocoSplit
    val: CocoSplit


def split_rng(seed: int, split: str) -> np.random.Generator:
    """The random generator of ``split`` ("train" or "val") for a set made with ``seed``."""
    return np.random.default_rng(seed + SPLITS.index(split))


def write_coco_set(
    root: str | Path,
    draw: Callable[[np.random.Generator], Drawing],
    *,
    categories: list[dict],
    ann_prefix: str,
    num_train: int,
    num_val: int,
    seed: int,
    settings: Mapping[str, object],
    image_suffix: str = ".png",
    description: str = "micronet_backbones generated set",
) -> CocoSet:
    """Write (or re-use) a generated COCO-format set under ``root``; see the module docstring.

    Args:
        root: the set's folder (created; must be empty or hold a set of the same settings).
        draw: the drawer, called once per image with the split's generator (its only source of
            randomness, so the same seed gives the same set).
        categories: COCO ``categories`` of both splits.
        ann_prefix: annotation file names are ``<ann_prefix>_<split>.json`` (COCO uses
            "instances", "person_keypoints").
        num_train, num_val: images per split (at least 1 each).
        seed: see :func:`split_rng`.
        settings: the drawer's settings (JSON values) that, with the writer's, identify the set.
        image_suffix: ".png" (lossless) or ".jpg" (JPEG, quality 92).
        description: COCO ``info.description`` (the split's name is appended).

    Raises:
        ValueError: a split of fewer than one image, an unknown suffix, or settings that clash
            with the writer's own keys.
        FileExistsError: ``root`` holds another set or something else.
    """
    if num_train < 1 or num_val < 1:
        raise ValueError(f"num_train and num_val must be >= 1, got {num_train}, {num_val}")
    if image_suffix not in (".png", ".jpg"):
        raise ValueError(f"image_suffix must be '.png' or '.jpg', got {image_suffix!r}")
    written = {
        "num_train": num_train, "num_val": num_val, "seed": seed,
        "ann_prefix": ann_prefix, "image_suffix": image_suffix,
    }  # fmt: skip
    if set(written) & set(settings):
        raise ValueError(f"drawer settings may not use the writer's keys {sorted(written)}")
    all_settings = json.loads(json.dumps({**written, **settings}))  # as read back from disk
    root = Path(root)
    counts = {"train": num_train, "val": num_val}
    splits = {
        name: CocoSplit(
            name, root / "images" / name, root / "annotations" / f"{ann_prefix}_{name}.json", count
        )
        for name, count in counts.items()
    }
    result = CocoSet(root, splits["train"], splits["val"])
    if _reusable(root, all_settings):
        return result
    for split in splits.values():
        _write_split(split, draw, split_rng(seed, split.name), categories, image_suffix,
                     f"{description}, {split.name} split")  # fmt: skip
    (root / SETTINGS_FILE).write_text(json.dumps(all_settings, indent=1))  # last: set complete
    return result


def _reusable(root: Path, settings: dict) -> bool:
    """True when ``root`` holds a complete set of ``settings``; False when it is free to write."""
    settings_path = root / SETTINGS_FILE
    if settings_path.is_file():
        if json.loads(settings_path.read_text()) == settings:
            return True
        raise FileExistsError(
            f"{root} holds a generated set made with other settings ({settings_path}); "
            "remove it or choose another folder"
        )
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f"{root} is not empty and holds no generated set; choose another folder"
        )
    return False


def _write_split(
    split: CocoSplit,
    draw: Callable[[np.random.Generator], Drawing],
    rng: np.random.Generator,
    categories: list[dict],
    image_suffix: str,
    description: str,
) -> None:
    images, annotations = [], []
    for image_id in range(1, split.num_images + 1):
        drawing = draw(rng)
        height, width = drawing.image.shape[:2]
        stem = f"{image_id:06d}"
        _write_image(split.image_dir / f"{stem}{image_suffix}", drawing.image)
        for name, pixels in drawing.extras.items():
            _write_image(split.extra_dir(name) / f"{stem}.png", pixels)
        images.append({"id": image_id, "file_name": f"{stem}{image_suffix}",
                       "height": height, "width": width})  # fmt: skip
        for ann in drawing.annotations:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0,
                                **ann})  # fmt: skip
    coco = {
        "info": {"description": description},
        "images": images,
        "annotations": annotations,
        "categories": list(categories),
    }
    split.ann_file.parent.mkdir(parents=True, exist_ok=True)
    split.ann_file.write_text(json.dumps(coco))


def _write_image(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    params = [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY] if path.suffix == ".jpg" else []
    if not cv2.imwrite(str(path), pixels, params):
        raise OSError(f"could not write {path}")
