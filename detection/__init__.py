"""Detectron2 adapter for MicroNet (imports as ``micronet_backbones.detection``).

Importing this package registers three builders in Detectron2's ``BACKBONE_REGISTRY``:

* ``build_micronet_backbone``: the bare multi-scale MicroNet (features "stride4" ... "stride32"),
* ``build_micronet_fpn``: FPN p2-p6 with the max-pooled top level, for Faster R-CNN,
* ``build_micronet_retinanet_fpn``: FPN p3-p7 with P6/P7, for RetinaNet.

Use::

    from detectron2.config import get_cfg
    from micronet_backbones.detection import add_micronet_config

    cfg = get_cfg()
    add_micronet_config(cfg)            # MODEL.MICRONET.*
    cfg.merge_from_file("configs/detection/faster_rcnn_micronet_m3_fpn_3x.yaml")

The tools' code lives in modules imported on demand: ``training`` (``tools/train_net.py``),
``datasets`` (COCO-format sets registered by name), ``convert``
(``tools/convert_pretrained.py``) and ``quickstart`` (``tools/quickstart_detection.py``).
"""

from .backbone import MicroNetBackbone, build_micronet_backbone
from .config import add_micronet_config
from .fpn import build_micronet_fpn, build_micronet_retinanet_fpn

__all__ = [
    "MicroNetBackbone",
    "add_micronet_config",
    "build_micronet_backbone",
    "build_micronet_fpn",
    "build_micronet_retinanet_fpn",
]
