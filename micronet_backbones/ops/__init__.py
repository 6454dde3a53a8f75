"""MicroNet's operators, usable on their own: Micro-Factorized convolutions and Shift-Max."""

from .layer_chain import LayerChain
from .micro_factorized import (
    ChannelShuffle,
    GroupedPointwise,
    MicroFactorizedDepthwise,
    MicroFactorizedPointwise,
    micro_factorized_groups,
)
from .shift_max import (
    DynamicShiftMax,
    StaticShiftMax,
    add_spatial_attention,
    group_shift,
    make_divisible,
    shift_max,
)

__all__ = [
    "ChannelShuffle",
    "DynamicShiftMax",
    "GroupedPointwise",
    "LayerChain",
    "MicroFactorizedDepthwise",
    "MicroFactorizedPointwise",
    "StaticShiftMax",
    "add_spatial_attention",
    "group_shift",
    "make_divisible",
    "micro_factorized_groups",
    "shift_max",
]
