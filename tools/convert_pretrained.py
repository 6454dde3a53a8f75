#!/usr/bin/env python
"""Turn the authors' MicroNet ImageNet checkpoint into a Detectron2 ``MODEL.WEIGHTS`` file.

    python tools/convert_pretrained.py micronet-m3.pth micronet_m3_detectron2.pth --arch micronet_m3

then train with ``MODEL.WEIGHTS micronet_m3_detectron2.pth MODEL.MICRONET.WEIGHTS ""``.

The conversion (``micronet_backbones.detection.convert``): the checkpoint is first loaded into
the core's MicroNet (``micronet_backbones.load_pretrained``):
the authors' key names are mapped to ours, the classifier keys are skipped by name and any
other mismatch (missing or unexpected key, wrong shape, another arch) stops the conversion with
the keys named. The output is ``{"model": state_dict, "__author__": "micronet_backbones"}`` saved
with ``torch.save``: the backbone's tensors under ``--prefix`` (default
``backbone.bottom_up.micronet.``, the place of the MicroNet inside ``build_micronet_fpn`` and
``build_micronet_retinanet_fpn``; use ``backbone.micronet.`` for ``build_micronet_backbone``
alone). BatchNorm's ``num_batches_tracked`` counters are left out, as in Detectron2's own
ImageNet weights (FrozenBatchNorm2d has none). Detectron2 then loads it like its R-50 weights:
the FPN and the heads start from their own initialisation and are listed as not found in the
checkpoint.

The input is read with ``torch.load(..., weights_only=True)``: the authors' ``.pth`` (bare or
under ``state_dict``, with or without ``module.``) or a checkpoint in our own names.
"""

import sys

from micronet_backbones.detection.convert import main

if __name__ == "__main__":
    sys.exit(main())
