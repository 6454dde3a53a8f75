"""Fast inference for MicroNet: an exact, fused inference form of every model.

Quick use::

    import micronet_backbones as mb
    from micronet_backbones.deploy import to_inference_form

    model = mb.create_model("micronet_m3", pretrained=True)
    fast = to_inference_form(model)      # eval-mode outputs, float rounding only
    logits = fast(images)

Pieces usable on their own (e.g. by an adapter's head built from core Micro-Blocks):
:func:`fuse_block`, :func:`fuse_stem`; a top-down pose model (backbone + Micro-Block heatmap
head) with :func:`fuse_heatmap_model`. ``tools/export_onnx.py`` exports the inference form to
ONNX; ``tools/benchmark.py`` measures it.
"""

from .blocks import FusedBlock, fuse_block, fuse_stem
from .heatmap import FusedHeatmapHead, InferenceHeatmapModel, fuse_heatmap_model
from .model import FusedClassifierHead, InferenceMicroNet, to_inference_form
from .permutation import ChannelPermutation
from .pointwise import FusedPointwise
from .separable import MergedSeparableConv
from .shift_max import FusedShiftMax

__all__ = [
    "ChannelPermutation",
    "FusedBlock",
    "FusedClassifierHead",
    "FusedHeatmapHead",
    "FusedPointwise",
    "FusedShiftMax",
    "InferenceHeatmapModel",
    "InferenceMicroNet",
    "MergedSeparableConv",
    "fuse_block",
    "fuse_heatmap_model",
    "fuse_stem",
    "to_inference_form",
]
