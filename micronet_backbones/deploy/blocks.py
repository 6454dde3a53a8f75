"""Inference form of MicroNet's stem and Micro-Blocks: a short chain of fused ops each.

A block's layers, in the order its ``forward`` runs them (the core's
:meth:`~micronet_backbones.ops.LayerChain.ordered_layers`, so a change to a block's layers or
their order changes its inference form with it; a block that does not run that chain, or a layer
made of other parts than the fused op expects, is refused), become:

* ``GroupedPointwise`` (conv + BN)            -> :class:`FusedPointwise` (BN folded, one bmm)
* ``MicroFactorizedDepthwise`` (k x 1, BN, 1 x k, BN) -> :class:`MergedSeparableConv` (one k x k)
* ``DynamicShiftMax``                          -> :class:`FusedShiftMax`
* ``nn.ReLU6``                                 -> :class:`FusedReLU6`
* ``ChannelShuffle``s                          -> composed into one permutation (some compose to
  the identity), carried through the channelwise ops after it (their weights permuted instead)
  and written by the last activation before the next 1x1 conv (no extra pass) or by the
  residual addition; only a permutation that nothing can write is one copy.
* ``nn.Identity`` / empty ``nn.Sequential``    -> nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from ..blocks import MicroBlock, Stem
from ..ops import (
    ChannelShuffle,
    DynamicShiftMax,
    GroupedPointwise,
    LayerChain,
    MicroFactorizedDepthwise,
)
from .activation import FusedReLU6
from .permutation import ChannelPermutation
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
        return out.add_(x)


_NORM = (nn.BatchNorm2d, nn.Identity)
_SEPARABLE_PAIR = (nn.Conv2d, _NORM, nn.Conv2d, _NORM)  # k x 1 conv, norm, 1 x k conv, norm


def _layers_of(module: LayerChain, expected: tuple) -> list[nn.Module]:
    """``module.ordered_layers()``, refused unless they are of the ``expected`` kinds (one
    class or tuple of classes per layer): the fused op is made for that chain only."""
    layers = module.ordered_layers()
    if len(layers) != len(expected) or not all(map(isinstance, layers, expected)):
        names = [
            "|".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
            for kind in expected
        ]
        raise TypeError(
            f"no inference form for a {type(module).__name__} made of "
            f"{[type(layer).__name__ for layer in layers]}: expected {names}"
        )
    return layers


def _fused_layer(module: nn.Module, after_another: bool) -> nn.Module:
    """The fused op for one core layer (``after_another``: it reads a previous op's output)."""
    if isinstance(module, GroupedPointwise):
        return FusedPointwise(*_layers_of(module, (nn.Conv2d, _NORM)))
    if isinstance(module, MicroFactorizedDepthwise):
        return MergedSeparableConv(*_layers_of(module, _SEPARABLE_PAIR))
    if isinstance(module, DynamicShiftMax):
        return FusedShiftMax(module)
    if isinstance(module, nn.ReLU6):
        return FusedReLU6(inplace=after_another)
    raise TypeError(f"no inference form for layer {type(module).__name__}")


def _out_channels(op: nn.Module, channels: int) -> int:
    if isinstance(op, FusedPointwise):
        return op.out_channels
    if isinstance(op, MergedSeparableConv):
        return op.weight.shape[0]
    return channels


def fuse_block(block: nn.Module) -> FusedBlock:
    """The inference form of a core Micro-Block (A, B or C); exact, eval-mode semantics.

    Channel shuffles are composed and carried forward through the channelwise ops that follow
    them (ReLU6, depthwise conv, Shift-Max: their weights are permuted instead), until the next
    grouped 1x1 conv or the end of the block; there the permutation is written by the last
    activation (or the residual addition), or copied if nothing can write it.
    """
    if not isinstance(block, MicroBlock):
        raise TypeError(f"no inference form for {type(block).__name__}: expected a Micro-Block")
    layers: list[nn.Module] = []
    pending: torch.Tensor | None = None  # y = x[:, pending] still to be applied to the output
    channels = block.in_channels

    def flush() -> None:
        nonlocal pending
        permutation = None if pending is None else ChannelPermutation.identity_or_none(pending)
        pending = None
        if permutation is None:
            return
        last = layers[-1] if layers else None
        if isinstance(last, (FusedReLU6, FusedShiftMax)) and last.output is None:
            last.output = permutation
        else:
            layers.append(permutation)

    for module in block.ordered_layers():
        if isinstance(module, ChannelShuffle):
            index = module.permutation(channels)
            pending = index if pending is None else pending[index]
            continue
        if isinstance(module, nn.Identity):
            continue
        op = _fused_layer(module, after_another=bool(layers))
        channelwise = isinstance(op, (FusedReLU6, FusedShiftMax)) or (
            isinstance(op, MergedSeparableConv) and op.weight.shape[1] == 1
        )
        if pending is not None and channelwise:
            pending = op.absorb_input_permutation(pending)
        else:
            flush()
        layers.append(op)
        channels = _out_channels(op, channels)

    residual = bool(block.use_residual)
    output = None
    if pending is not None and residual:
        output = ChannelPermutation.identity_or_none(pending)
        pending = None
    flush()
    return FusedBlock(layers, residual, output)


def fuse_stem(stem: Stem) -> nn.Sequential:
    """The inference form of the core :class:`Stem`: one 3x3 conv (shuffle folded into its
    output channels) and an in-place ReLU6. (N, 3, H, W) -> (N, C, H / 2, W / 2).

    Reads the stem's layers in order (its ``ordered_layers()``) and refuses any other chain
    than conv k x 1, BN, conv 1 x k, BN, channel shuffle, ReLU6.
    """
    if not isinstance(stem, Stem):
        raise TypeError(f"fuse_stem needs a core Stem, got {type(stem).__name__}")
    layers = _layers_of(stem, (*_SEPARABLE_PAIR, ChannelShuffle, nn.ReLU6))
    first, first_bn, second, second_bn, shuffle, _ = layers
    index = shuffle.permutation(second.out_channels)
    conv = MergedSeparableConv(first, first_bn, second, second_bn, output_index=index)
    return nn.Sequential(conv, FusedReLU6(inplace=True))
