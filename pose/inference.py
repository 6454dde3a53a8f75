"""The exact inference form of a top-down pose model (MicroNet backbone + Micro-Block head).

What the head's layers are (two bilinear x2 upsamplings, each followed by Micro-Blocks, then a
1x1 conv) is the head's business; this is the one place that hands those pieces to the core's
:func:`micronet_backbones.deploy.fuse_heatmap_model`, for the ONNX export tool, the benchmark
and the tests.
"""

from __future__ import annotations

from torch import nn

from micronet_backbones.deploy import fuse_heatmap_model
from micronet_backbones.deploy.exportable import Exportable
from micronet_backbones.openmmlab import MicroNetBackbone

from .heatmap_model import PoseHeatmaps, build_pose_model
from .micro_block_head import MicroBlockHead

__all__ = ["pose_exportable", "pose_inference_form"]


def pose_inference_form(model: nn.Module) -> nn.Module:
    """(N, 3, H, W) normalised images -> (N, K, H / 4, W / 4) heatmaps, fused, equal to
    ``model.head(model.backbone(x))`` of the eval-mode MMPose ``model`` up to float rounding.

    Raises ``TypeError`` for a model that is not a MicroNet backbone + ``MicroBlockHead``
    without a neck.
    """
    backbone, head = _micronet_parts(model)
    return fuse_heatmap_model(
        backbone.body, [head.stride8, head.stride4], head.final_layer, head.align_corners
    )


def _micronet_parts(model: nn.Module) -> tuple[MicroNetBackbone, MicroBlockHead]:
    backbone, head = model.backbone, model.head
    if not isinstance(backbone, MicroNetBackbone) or not isinstance(head, MicroBlockHead):
        raise TypeError(
            "expected a MicroNet backbone and a MicroBlockHead, got "
            f"{type(backbone).__name__} and {type(head).__name__}"
        )
    if getattr(model, "with_neck", False):
        raise TypeError("a neck between backbone and head is not supported")
    return backbone, head


def pose_exportable(
    config: str, checkpoint: str | None = None, fused: bool = True, size=(256, 192)
) -> Exportable:
    """The pose model of an MMPose ``config`` (weights of an MMPose ``checkpoint`` if given)
    for ONNX: input the normalised image (what MMPose's data preprocessor gives the backbone),
    output the raw heatmaps."""
    model = build_pose_model(config, checkpoint)
    try:
        backbone, head = _micronet_parts(model)
    except TypeError as error:
        raise TypeError(f"{config}: {error}") from None
    module = pose_inference_form(model) if fused else PoseHeatmaps(backbone, head).eval()
    tag = "_fused" if fused else ""
    return Exportable(f"{backbone.arch}_pose{tag}", module, (1, 3, *size), ("heatmaps",))
