"""The segmentation models of ``configs/segmentation`` (and MMSegmentation's own LR-ASPP
MobileNetV3, the paper's comparison) as plain modules, for the tools that count them
(``tools/flops.py --segmentation``).

Counting needs the tensor path of an ``EncoderDecoder`` (normalised image -> backbone -> decode
head -> logits at the head's stride), without MMSegmentation's data samples.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["CITYSCAPES_CONFIGS", "MMSEG_LRASPP_CONFIG", "SegmentationLogits", "build_segmentor"]

# The Cityscapes configs per arch, relative to the repository root (configs are not installed
# with the package; the tools run from a checkout).
CITYSCAPES_CONFIGS = {
    f"micronet_{arch}": f"configs/segmentation/micronet-{arch}_mraspp_4xb4-240e_cityscapes-512x1024.py"
    for arch in ("m1", "m2", "m3")
}
# MMSegmentation's LR-ASPP on MobileNetV3-Large (its configs, installed with mmseg)
MMSEG_LRASPP_CONFIG = "mmseg::mobilenet_v3/mobilenet-v3-d8_lraspp_4xb4-320k_cityscapes-512x1024.py"


class SegmentationLogits(nn.Module):
    """An ``EncoderDecoder``'s tensor path: (N, 3, H, W) normalised images -> backbone ->
    decode head -> (N, num_classes, H / s, W / s) logits (s = 8 for MR-ASPP and LR-ASPP)."""

    def __init__(self, segmentor: nn.Module) -> None:
        super().__init__()
        self.backbone = segmentor.backbone
        self.decode_head = segmentor.decode_head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode_head(self.backbone(x))


def build_segmentor(config: str | Path) -> nn.Module:
    """The MMSegmentation model ``config`` describes (a path, or ``mmseg::`` for a config shipped
    with MMSegmentation; ``custom_imports`` honoured), in eval mode, with its random initialisation: ImageNet weights (``init_cfg`` / ``pretrained``) are not
    loaded (counting needs no download). SyncBN is built as plain BatchNorm (one process)."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    import micronet_backbones.segmentation  # noqa: F401  (registers MicroNet and MRASPPHead)

    is_packaged = "::" in str(config)
    cfg = get_config(str(config)) if is_packaged else Config.fromfile(str(config))
    init_default_scope(cfg.get("default_scope", "mmseg"))
    cfg.model.pretrained = None
    for part in ("backbone", "decode_head"):
        cfg.model[part].init_cfg = None
        if cfg.model[part].get("norm_cfg", {}).get("type") == "SyncBN":
            cfg.model[part].norm_cfg.type = "BN"
    return MODELS.build(cfg.model).eval()
