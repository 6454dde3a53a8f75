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

Everything here is derived from what the core declares, never from a copy of its internals:
each stem, block and layer's parts in order (``LayerChain.ordered_layers()``; anything else is
refused with a ``TypeError``), the Shift-Max hyper-function with named (K, J, C) axes
(``DynamicShiftMax.folded_hyper_function()``), its shifts (``group_shift``) and each channel
shuffle's index (``ChannelShuffle.permutation``). Eager PyTorch and export share one code path
except where the two runtimes want different ops (see each module).
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
