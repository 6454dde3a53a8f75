"""Inference form of MicroNet's stem and Micro-Blocks: a short chain of fused ops each.

A block's layers (in the order of its ``forward``, see :mod:`micronet_backbones.blocks`) become:

* ``GroupedPointwise`` (conv + BN)            -> :class:`FusedPointwise` (BN folded, one bmm)
* ``MicroFactorizedDepthwise`` (k x 1, BN, 1 x k, BN) -> :class:`MergedSeparableConv` (one k x k)
* ``DynamicShiftMax``                          -> :class:`FusedShiftMax`
* ``nn.ReLU6``                                 -> :class:`FusedReLU6`
* ``ChannelShuffle``s                          -> composed into one permutation, written by the
  activation before it (no extra pass), or by the residual addition at the end of the block;
  a permutation that cannot be cancelled (2 of 3 compose to the identity in some blocks) or
  written that way is one copy.
* ``nn.Identity`` / empty ``nn.Sequential``    -> nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import MicroBlockA, MicroBlockB, MicroBlockC, Stem
from ..ops import ChannelShuffle, DynamicShiftMax, GroupedPointwise, MicroFactorizedDepthwise
from .activation import FusedReLU6
from .permutation import ChannelPermutation, exporting
from .pointwise import FusedPointwise
from .separable import MergedSeparableConv
from .shift_max import FusedShiftMax

__all__ = ["FusedBlock", "fuse_block", "fuse_stem"]


class FusedBlock(nn.Module):
    """(N, in, H, W) -> (N, out, H', W'): ``layers`` in turn, then ``+ x`` when ``residual``.

    ``output`` (with ``residual`` only) is a channel permutation applied to the last layer's
    result within the residual addition.
    """

    def __init__(
        self,
        layers: list[nn.Module],
        residual: bool,
        output: ChannelPermutation | None = None,
    ) -> None:
        super().__init__()
        if output is not None and not residual:
            raise ValueError("an output permutation belongs to a residual block")
        self.layers = nn.Sequential(*layers)
        self.residual = residual
        self.output = output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        if not self.residual:
            return out
        if self.output is not None:
            return self.output.add_to(out, x)
        return out + x if exporting() else out.add_(x)


def _layers_in_order(block: nn.Module) -> list[nn.Module]:
    """The layers a core Micro-Block applies, in order (Sequentials flattened)."""
    if isinstance(block, MicroBlockA):
        names = ("depthwise", "act_depthwise", "shuffle_depthwise", "project", "act_project",
                 "shuffle_project")
    elif isinstance(block, MicroBlockB):
        names = ("expand", "act_expand")
    elif isinstance(block, MicroBlockC):
        names = ("expand", "act_expand", "shuffle_expand", "depthwise", "act_depthwise",
                 "shuffle_depthwise", "project", "act_project", "shuffle_project")
    else:
        raise TypeError(f"no inference form for {type(block).__name__}: expected a Micro-Block")
    layers = []
    for name in names:
        module = getattr(block, name)
        layers.extend(module if isinstance(module, nn.Sequential) else [module])
    return layers


def fuse_block(block: nn.Module) -> FusedBlock:
    """The inference form of a core Micro-Block (A, B or C); exact, eval-mode semantics."""
    layers: list[nn.Module] = []
    pending: torch.Tensor | None = None  # composed permutation not yet applied: y = x[pending]
    channels = block.in_channels

    def flush() -> None:
        nonlocal pending
        if pending is None:
            return
        permutation = ChannelPermutation.identity_or_none(pending)
        pending = None
        if permutation is None:
            return
        last = layers[-1] if layers else None
        if isinstance(last, (FusedReLU6, FusedShiftMax)) and last.output is None:
            last.output = permutation
            if isinstance(last, FusedReLU6):
                last.inplace = False
        else:
            layers.append(permutation)

    for module in _layers_in_order(block):
        if isinstance(module, ChannelShuffle):
            index = module.permutation(channels)
            pending = index if pending is None else pending[index]
            continue
        if isinstance(module, nn.Identity):
            continue
        flush()
        if isinstance(module, GroupedPointwise):
            layers.append(FusedPointwise(module.conv, module.bn))
            channels = module.conv.out_channels
        elif isinstance(module, MicroFactorizedDepthwise):
            layers.append(
                MergedSeparableConv(module.conv_kx1, module.bn_kx1, module.conv_1xk, module.bn_1xk)
            )
            channels = module.out_channels
        elif isinstance(module, DynamicShiftMax):
            layers.append(FusedShiftMax(module))
        elif isinstance(module, nn.ReLU6):
            layers.append(FusedReLU6(inplace=bool(layers)))
        else:
            raise TypeError(f"no inference form for layer {type(module).__name__} in {block}")

    residual = bool(block.use_residual)
    output = None
    if pending is not None and residual:
        output = ChannelPermutation.identity_or_none(pending)
        pending = None
    flush()
    return FusedBlock(layers, residual, output)


def fuse_stem(stem: Stem) -> nn.Sequential:
    """The inference form of the core :class:`Stem`: one 3x3 conv (shuffle folded into its
    output channels) and an in-place ReLU6. (N, 3, H, W) -> (N, C, H / 2, W / 2)."""
    if not isinstance(stem, Stem):
        raise TypeError(f"fuse_stem needs a core Stem, got {type(stem).__name__}")
    if not isinstance(stem.act, nn.ReLU6):
        raise TypeError(f"the stem's activation must be ReLU6, got {type(stem.act).__name__}")
    index = stem.shuffle.permutation(stem.out_channels)
    conv = MergedSeparableConv(
        stem.conv_kx1, stem.bn_kx1, stem.conv_1xk, stem.bn_1xk, output_index=index
    )
    return nn.Sequential(conv, FusedReLU6(inplace=True))
