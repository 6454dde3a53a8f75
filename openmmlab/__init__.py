"""Code shared by the OpenMMLab adapters (imports as ``micronet_backbones.openmmlab``).

The MMPose (``micronet_backbones.pose``), MMSegmentation (``micronet_backbones.segmentation``)
and MMDetection (``micronet_backbones.mmdetection``) adapters all sit on MMEngine; what they
have in common lives here, once, and imports no toolbox (only MMEngine):

* :class:`MicroNetBackbone` (``backbone.py``): the OpenMMLab MicroNet backbone, which each
  adapter registers in its toolbox's ``MODELS`` as ``MicroNet``;
* :func:`mmengine_checkpoints` (``checkpoint_compat.py``): a ``with`` block in which MMEngine's
  own checkpoints load under ``torch.load(weights_only=True)``;
* ``cli.py``: the train / test command line and Runner setup behind the ``tools/train_*.py`` /
  ``tools/test_*.py`` scripts (:func:`~micronet_backbones.openmmlab.cli.train_main`,
  :func:`~micronet_backbones.openmmlab.cli.test_main`).
"""

from .backbone import MicroNetBackbone
from .checkpoint_compat import MMENGINE_CHECKPOINT_GLOBALS, mmengine_checkpoints

__all__ = ["MMENGINE_CHECKPOINT_GLOBALS", "MicroNetBackbone", "mmengine_checkpoints"]
