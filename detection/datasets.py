"""COCO-format data sets registered with Detectron2 by name, checked before they are used.

``tools/train_net.py --register-coco NAME JSON IMAGE_DIR`` and the quick-start's generated set
(:class:`micronet_backbones.synthetic.CocoSet`) both register through :func:`register_coco`, so
``DATASETS.TRAIN`` / ``DATASETS.TEST`` can name them and ``COCOEvaluator`` scores against the
json.
"""

from __future__ import annotations

import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances

__all__ = ["register_coco", "register_coco_set"]


def register_coco(name: str, json_file: str | os.PathLike, image_dir: str | os.PathLike) -> str:
    """Register a COCO-format set as ``name`` with ``register_coco_instances``; returns ``name``.

    Raises ``FileNotFoundError`` when the json or the image folder is missing (instead of a
    failure at the first training step), and ``ValueError`` when ``name`` is already registered
    for another json. Registering the same json under the same name again is a no-op.
    """
    json_file, image_dir = str(json_file), str(image_dir)
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"data set {name!r}: no annotation file at {json_file}")
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"data set {name!r}: no image folder at {image_dir}")
    if name in DatasetCatalog.list():
        registered = MetadataCatalog.get(name).get("json_file", None)
        if registered != json_file:
            raise ValueError(
                f"dataset name {name!r} is already registered for {registered}, not {json_file}"
            )
        return name
    register_coco_instances(name, {}, json_file, image_dir)
    return name


def register_coco_set(dataset, prefix: str) -> tuple[str, str]:
    """Register a generated set's splits (a ``CocoSet``) as ``<prefix>_train`` and ``<prefix>_val``.

    Returns the two names.
    """
    return (
        register_coco(f"{prefix}_train", dataset.train.ann_file, dataset.train.image_dir),
        register_coco(f"{prefix}_val", dataset.val.ann_file, dataset.val.image_dir),
    )
