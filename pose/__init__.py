"""MMPose adapter for MicroNet (imports as ``micronet_backbones.pose``).

Importing it registers, in MMPose's ``MODELS`` registry:

* ``MicroNet``: the OpenMMLab MicroNet backbone shared by the OpenMMLab adapters
  (:class:`micronet_backbones.openmmlab.MicroNetBackbone`): the core's MicroNet-M0 ... M3 with
  the paper's pose stride adjustment (deepest feature at stride 16), ``frozen_stages``,
  ``norm_eval`` and the authors' ImageNet checkpoint through
  ``init_cfg=dict(type='Pretrained', checkpoint=...)``;
* ``MicroBlockHead``: the paper's Micro-Block top-down heatmap head.

MMPose configs load it with
``custom_imports = dict(imports=['micronet_backbones.pose'], allow_failed_imports=False)``;
see ``configs/pose/``. ``heatmap_model.py`` builds a config's model for the tools (FLOPs, ONNX
export, benchmark).
"""

from mmpose.registry import MODELS

from micronet_backbones.openmmlab import MicroNetBackbone

from .micro_block_head import MicroBlockHead, build_head_blocks

MODELS.register_module(name="MicroNet", module=MicroNetBackbone)

__all__ = ["MicroBlockHead", "MicroNetBackbone", "build_head_blocks"]
