"""``add_micronet_config(cfg)``: the ``MODEL.MICRONET.*`` keys of a Detectron2 config.

=============================  ====================  =============================================
key                            default               meaning
=============================  ====================  =============================================
MODEL.MICRONET.ARCH            "micronet_m3"         one of ``micronet_backbones.list_models()``,
                                                     either spelling ("micronet_m3" or "m3")
MODEL.MICRONET.OUT_FEATURES    ["stride4", ...,      feature maps the backbone returns, named by
                               "stride32"]           stride: "stride4", "stride8", "stride16",
                                                     "stride32" (the output of the last block at
                                                     that stride). ``MODEL.FPN.IN_FEATURES`` picks
                                                     from these.
MODEL.MICRONET.NORM            "FrozenBN"            norm of the blocks that train: "BN",
                                                     "FrozenBN" (Detectron2's default for
                                                     ImageNet backbones) or "SyncBN" (multi-GPU)
MODEL.MICRONET.WEIGHTS         ""                    the authors' ImageNet checkpoint (path or
                                                     URL, e.g. their micronet-m3.pth), loaded
                                                     into the backbone when it is built; "" for
                                                     none. The classifier keys are skipped; any
                                                     other mismatch raises. Alternatively convert
                                                     it once with ``tools/convert_pretrained.py``
                                                     and set ``MODEL.WEIGHTS``.
=============================  ====================  =============================================

What is frozen is Detectron2's own ``MODEL.BACKBONE.FREEZE_AT`` (default 2), with ResNet's
meaning: 0 freezes nothing, 1 the stem, k >= 2 the stem and every block up to stride 2**k (so 2
= stem + stride-4 blocks, like ResNet's stem + res2). Frozen parts have ``requires_grad=False``
and FrozenBatchNorm. A config that still sets the former ``MODEL.MICRONET.FREEZE_AT`` fails to
merge with an error naming the key to use instead.
"""

from __future__ import annotations

from detectron2.config import CfgNode as CN

__all__ = ["FEATURE_NAMES", "NORMS", "add_micronet_config", "feature_name"]

NORMS = ("BN", "FrozenBN", "SyncBN")
FEATURE_NAMES = ("stride4", "stride8", "stride16", "stride32")


def feature_name(stride: int) -> str:
    """Detectron2 name of the backbone feature map at ``stride``: 8 -> "stride8"."""
    return f"stride{stride}"


def add_micronet_config(cfg: CN) -> CN:
    """Add ``MODEL.MICRONET`` with its defaults to ``cfg`` (in place; also returned).

    Call it after ``get_cfg()`` and before ``merge_from_file``. Calling it twice is an error
    (as Detectron2 does for a key added twice), so a config is never silently reset.
    """
    if "MICRONET" in cfg.MODEL:
        raise KeyError("cfg.MODEL.MICRONET already exists: add_micronet_config was called twice")
    cfg.MODEL.MICRONET = CN()
    cfg.MODEL.MICRONET.ARCH = "micronet_m3"
    cfg.MODEL.MICRONET.OUT_FEATURES = list(FEATURE_NAMES)
    cfg.MODEL.MICRONET.NORM = "FrozenBN"
    cfg.MODEL.MICRONET.WEIGHTS = ""
    cfg.register_renamed_key(
        "MODEL.MICRONET.FREEZE_AT",
        "MODEL.BACKBONE.FREEZE_AT",
        message="MicroNet uses Detectron2's own freeze setting",
    )
    return cfg
