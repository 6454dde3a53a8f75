"""The pose models of ``configs/pose`` as plain modules, for the tools that count, export or time
them (``tools/flops.py``, ``tools/export_onnx.py``, ``tools/benchmark.py``).

Those tools need the tensor path of a top-down model (image -> backbone -> head -> heatmaps),
without MMPose's data samples, and the list of the COCO configs; both live here once.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from micronet_backbones.openmmlab import mmengine_checkpoints

__all__ = ["COCO_CONFIGS", "PoseHeatmaps", "build_pose_model"]

# The COCO top-down configs (256 x 192) per arch, relative to the repository root (configs are
# not installed with the package; the tools run from a checkout).
COCO_CONFIGS = {
    "micronet_m2": "configs/pose/micronet-m2_8xb32-250e_coco-256x192.py",
    "micronet_m3": "configs/pose/micronet-m3_8xb32-250e_coco-256x192.py",
}


class PoseHeatmaps(nn.Module):
    """An MMPose top-down model's tensor path: (N, 3, H, W) normalised images -> backbone ->
    head -> (N, K, H / 4, W / 4) heatmaps (what the data preprocessor's output becomes)."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_pose_model(config: str | Path, checkpoint: str | Path | None = None) -> nn.Module:
    """The MMPose model ``config`` describes (``custom_imports`` honoured), in eval mode.

    With ``checkpoint`` (an MMPose / MMEngine checkpoint) its weights are loaded strictly;
    without, the weights are the random initialisation: the config's ImageNet ``Pretrained``
    backbone init is not run (counting and exporting need no download).
    """
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpose.registry import MODELS

    cfg = Config.fromfile(str(config))
    init_default_scope(cfg.get("default_scope", "mmpose"))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        with mmengine_checkpoints():
            load_checkpoint(model, str(checkpoint), map_location="cpu", strict=True)
    return model.eval()
