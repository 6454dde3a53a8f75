"""MMDetection adapter for MicroNet (imports as ``micronet_backbones.mmdetection``).

Importing it registers, in MMDetection's ``MODELS`` registry, ``MicroNet``: the OpenMMLab
MicroNet backbone shared by the OpenMMLab adapters
(:class:`micronet_backbones.openmmlab.MicroNetBackbone`). For detection it runs the ImageNet
network (``output_stride=32``) and returns the maps an FPN reads (``out_strides=(4, 8, 16, 32)``
for Faster R-CNN, ``(8, 16, 32)`` for RetinaNet), with MMDetection's conventions for
``frozen_stages`` / ``norm_eval`` and the authors' ImageNet checkpoint through
``init_cfg=dict(type='Pretrained', checkpoint=...)``. Necks and heads are MMDetection's own.

MMDetection configs load it with
``custom_imports = dict(imports=['micronet_backbones.mmdetection'], allow_failed_imports=False)``;
see ``configs/mmdet/``.

The folder is ``mmdetection/`` rather than ``mmdet/``: a top-level ``mmdet`` folder would
shadow the real ``mmdet`` package for anything run from the repository root (the working
directory comes first on ``sys.path``), and ``detection/`` is the Detectron2 adapter.
"""

from mmdet.registry import MODELS

from micronet_backbones.openmmlab import MicroNetBackbone

MODELS.register_module(name="MicroNet", module=MicroNetBackbone)

__all__ = ["MicroNetBackbone"]
