"""MMSegmentation adapter for MicroNet (imports as ``micronet_backbones.segmentation``).

Importing it registers, in MMSegmentation's ``MODELS`` registry:

* ``MicroNet``: the OpenMMLab MicroNet backbone shared by the OpenMMLab adapters
  (:class:`micronet_backbones.openmmlab.MicroNetBackbone`, the same class MMPose gets); for
  MR-ASPP use ``out_strides=(8, 16)`` and ``output_stride=16`` (the paper's stride adjustment:
  the stride-32 blocks run at stride 16, same weights, no dilation), and the authors' ImageNet
  checkpoint through ``init_cfg=dict(type='Pretrained', checkpoint=...)``;
* ``MRASPPHead``: the MR-ASPP decode head (LR-ASPP with Micro-Factorized pointwise convs).

MMSegmentation configs load it with
``custom_imports = dict(imports=['micronet_backbones.segmentation'], allow_failed_imports=False)``;
see ``configs/segmentation/``.
"""

from mmseg.registry import MODELS

from micronet_backbones.openmmlab import MicroNetBackbone

from .head import MRASPPHead

MODELS.register_module(name="MicroNet", module=MicroNetBackbone)

__all__ = ["MRASPPHead", "MicroNetBackbone"]
