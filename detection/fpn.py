"""FPNs over MicroNet: ``build_micronet_fpn`` (Faster R-CNN) and ``build_micronet_retinanet_fpn``.

Both are Detectron2's own ``FPN`` over :class:`MicroNetBackbone` as bottom-up, configured by
``MODEL.FPN.*`` (``IN_FEATURES``, ``OUT_CHANNELS``, ``NORM``, ``FUSE_TYPE``) and
``MODEL.MICRONET.*``:

* ``build_micronet_fpn``: ``IN_FEATURES`` ["stride4", "stride8", "stride16", "stride32"] give
  p2 ... p5 (strides 4 ... 32) and ``LastLevelMaxPool`` adds p6 (stride 64), as for
  Faster R-CNN R50-FPN (``MODEL.RPN.IN_FEATURES`` / ``MODEL.ROI_HEADS.IN_FEATURES`` use p2-p6 /
  p2-p5).
* ``build_micronet_retinanet_fpn``: ``IN_FEATURES`` ["stride8", "stride16", "stride32"] give
  p3 ... p5 and ``LastLevelP6P7`` adds p6 and p7 (strides 64, 128) computed from the bottom-up
  stride-32 map, as Detectron2's RetinaNet does from res5 (``MODEL.RETINANET.IN_FEATURES``
  p3-p7).

Output: ``{"p<k>": (N, OUT_CHANNELS, H / 2**k, W / 2**k)}``; ``size_divisibility`` is 32.
"""

from __future__ import annotations

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone.fpn import FPN, LastLevelMaxPool, LastLevelP6P7

from .backbone import build_micronet_backbone
from .config import feature_name

__all__ = ["build_micronet_fpn", "build_micronet_retinanet_fpn"]

_TOP = feature_name(32)


def _check_in_features(cfg, bottom_up) -> list[str]:
    in_features = list(cfg.MODEL.FPN.IN_FEATURES)
    available = list(bottom_up.output_shape())
    missing = [name for name in in_features if name not in available]
    if missing:
        raise ValueError(
            f"MODEL.FPN.IN_FEATURES {in_features} names {missing}, which the MicroNet backbone does "
            f"not return (MODEL.MICRONET.OUT_FEATURES = {available})"
        )
    if not in_features or in_features[-1] != _TOP:
        raise ValueError(
            f"MODEL.FPN.IN_FEATURES must end with {_TOP!r} (the extra FPN levels start from it), "
            f"got {in_features}"
        )
    return in_features


@BACKBONE_REGISTRY.register()
def build_micronet_fpn(cfg, input_shape: ShapeSpec) -> FPN:
    """MicroNet + FPN with the max-pooled p6 (Faster R-CNN)."""
    bottom_up = build_micronet_backbone(cfg, input_shape)
    return FPN(
        bottom_up=bottom_up,
        in_features=_check_in_features(cfg, bottom_up),
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_micronet_retinanet_fpn(cfg, input_shape: ShapeSpec) -> FPN:
    """MicroNet + FPN with p6 / p7 from the bottom-up stride-32 map (RetinaNet)."""
    bottom_up = build_micronet_backbone(cfg, input_shape)
    in_features = _check_in_features(cfg, bottom_up)
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=in_features,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(
            bottom_up.output_shape()[_TOP].channels, out_channels, in_feature=_TOP
        ),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
