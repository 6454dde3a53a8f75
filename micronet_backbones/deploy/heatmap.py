"""Inference form of a top-down heatmap pose model: MicroNet backbone + Micro-Block head.

Framework-free: the head is given as its parts (stages of core Micro-Blocks, each after a
bilinear x2 upsampling, then a 1x1 conv), so an adapter (e.g. ``micronet_backbones.pose``'s
``MicroBlockHead``: ``[head.stride8, head.stride4], head.final_layer, head.align_corners``)
hands them over without this module knowing the toolbox.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..model import MicroNet
from .blocks import fuse_block
from .model import InferenceMicroNet, to_inference_form
from .pointwise import FusedPointwise

__all__ = ["FusedHeatmapHead", "InferenceHeatmapModel", "fuse_heatmap_model"]


class FusedHeatmapHead(nn.Module):
    """(N, C, h, w) -> (N, K, h * 2^S, w * 2^S) for S stages: per stage a bilinear x2
    upsampling and its Micro-Blocks (fused), then the 1x1 conv to K heatmaps (as a matrix
    product)."""

    def __init__(
        self, stages: Sequence[Sequence[nn.Module]], final_layer: nn.Conv2d, align_corners: bool
    ) -> None:
        super().__init__()
        if not stages or any(len(stage) == 0 for stage in stages):
            raise ValueError("a heatmap head needs at least one stage, each with Micro-Blocks")
        self.stages = nn.ModuleList(
            nn.Sequential(*(fuse_block(block) for block in stage)) for stage in stages
        )
        self.final_layer = FusedPointwise(final_layer, nn.Identity())
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=self.align_corners)
            x = stage(x)
        return self.final_layer(x)


class InferenceHeatmapModel(nn.Module):
    """(N, 3, H, W) -> heatmaps: the fused backbone's last feature map through the fused head."""

    def __init__(self, backbone: InferenceMicroNet, head: FusedHeatmapHead) -> None:
        super().__init__()
        if not backbone.features_only:
            raise ValueError("the pose backbone must be a features_only MicroNet")
        self.backbone = backbone
        self.head = head
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x)[-1])


@torch.no_grad()
def fuse_heatmap_model(
    backbone: MicroNet,
    stages: Sequence[Sequence[nn.Module]],
    final_layer: nn.Conv2d,
    align_corners: bool = False,
) -> InferenceHeatmapModel:
    """Inference form of backbone (``features_only`` MicroNet, its last tap feeds the head) +
    head (``stages`` of core Micro-Blocks, each after a bilinear x2 upsampling, then
    ``final_layer``). Exact: same heatmaps as the eval-mode original, float rounding only."""
    return InferenceHeatmapModel(
        to_inference_form(backbone), FusedHeatmapHead(stages, final_layer, align_corners)
    )
