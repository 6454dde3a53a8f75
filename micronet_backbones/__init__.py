"""MicroNet (Li et al., ICCV 2021) in pure PyTorch: operators, Micro-Blocks, M0-M3, checkpoints.

Quick use::

    import micronet_backbones as mb
    model = mb.create_model("micronet_m1", pretrained=True)          # ImageNet classifier
    backbone = mb.create_model("micronet_m1", features_only=True)     # list of 4 feature maps
    backbone.feature_info  # (FeatureInfo(stage=0, module='stages.0', channels=8, stride=4), ...)
"""

from . import timm_registry as timm_registry  # MicroNet in timm's registry once timm loads
from .blocks import MicroBlockA, MicroBlockB, MicroBlockC, Stem, block_from_spec
from .checkpoint import (
    CheckpointDownloadError,
    CheckpointError,
    LoadResult,
    authors_key_map,
    convert_authors_state_dict,
    load_pretrained,
    read_checkpoint,
)
from .full_rank import full_rank_partner
from .model import ClassifierHead, FeatureInfo, MicroNet
from .ops import (
    ChannelShuffle,
    DynamicShiftMax,
    GroupedPointwise,
    MicroFactorizedDepthwise,
    MicroFactorizedPointwise,
    StaticShiftMax,
)
from .registry import canonical_name, create_model, get_spec, list_models
from .specs import BlockSpec, MicroNetSpec

__all__ = [
    "BlockSpec",
    "ChannelShuffle",
    "CheckpointDownloadError",
    "CheckpointError",
    "ClassifierHead",
    "DynamicShiftMax",
    "FeatureInfo",
    "GroupedPointwise",
    "LoadResult",
    "MicroBlockA",
    "MicroBlockB",
    "MicroBlockC",
    "MicroFactorizedDepthwise",
    "MicroFactorizedPointwise",
    "MicroNet",
    "MicroNetSpec",
    "StaticShiftMax",
    "Stem",
    "authors_key_map",
    "block_from_spec",
    "canonical_name",
    "convert_authors_state_dict",
    "create_model",
    "full_rank_partner",
    "get_spec",
    "list_models",
    "load_pretrained",
    "read_checkpoint",
]
