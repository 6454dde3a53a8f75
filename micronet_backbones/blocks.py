"""MicroNet's stem and Micro-Blocks A, B and C, built exactly as the authors' released code does.

Each block is built from one :class:`~micronet_backbones.specs.BlockSpec` row, so it can be used
outside a :class:`~micronet_backbones.model.MicroNet` (e.g. by a pose head) at any width the row
allows: ``block_from_spec(row)``. Every block maps (N, in_channels, H, W) to
(N, out_channels, H', W') with H' = ceil(H / stride), W' = ceil(W / stride) for k = 3 and k = 5.

Layers, in order (each class's ``layer_names``: the stem and the blocks are
:class:`~micronet_backbones.ops.LayerChain` modules, whose ``forward`` runs that list and whose
``ordered_layers()`` gives it to the inference form; ``R = spec.reduction``,
hidden = ``spec.hidden_channels``, all Shift-Max J = 2):

* **A** (lite combination): ``depthwise`` Micro-Factorized depthwise k x 1 / 1 x k that expands
  in -> in * e1 -> hidden; ``act_depthwise`` (Shift-Max, G = g2, R) or ReLU6;
  ``shuffle_depthwise``; ``project`` grouped 1x1 (g3 groups) hidden -> out;
  ``act_project`` (Shift-Max K = 1, G = g4, R / 2) or nothing; ``shuffle_project``.
* **B** (pointwise expansion; the last block of each released net): ``expand`` grouped 1x1
  (g1 groups) in -> hidden; ``act_expand`` (Shift-Max K = 1, G = g2, R) or nothing.
* **C** (regular combination): ``expand`` grouped 1x1 (g1 groups) in -> hidden;
  ``act_expand`` (Shift-Max, G = g2, R) or ReLU6; ``shuffle_expand``; ``depthwise`` k x 1 / 1 x k
  depthwise (no expansion); ``act_depthwise`` (Shift-Max, G = hidden / g2, R) or ReLU6;
  ``shuffle_depthwise``; ``project`` grouped 1x1 (g3 groups) hidden -> out; ``act_project``
  (Shift-Max K = 1, G = g4, R / 2 if out < hidden else R) or nothing; ``shuffle_project``.

A and C add the input to the output when ``spec.has_residual`` (stride 1, in == out).

On the letters: the paper's Micro-Block-A is the lite block and its Micro-Block-C the regular
one; its Micro-Block-B (a single block joining A and C with a "full" squeeze-then-expand pointwise
pair) has no construction of its own in the released code, whose blocks are cut at different
points (the squeeze and the following expansion sit in consecutive blocks). The released code has
exactly three constructions, A, C and the final pointwise expansion; we call that last one B.

The channel shuffles (``ChannelShuffle`` modules, empty ``nn.Sequential`` where there is none)
are fixed permutations that a fused inference form can fold into the next convolution. The only
norm layers are ``nn.BatchNorm2d``, each right after its ``nn.Conv2d``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from .ops import (
    ChannelShuffle,
    DynamicShiftMax,
    GroupedPointwise,
    LayerChain,
    MicroFactorizedDepthwise,
)
from .specs import BlockSpec

__all__ = [
    "BlockConvs",
    "MICRO_FACTORIZED",
    "MicroBlockA",
    "MicroBlockB",
    "MicroBlockC",
    "Stem",
    "block_from_spec",
    "init_weights_",
]


def init_weights_(module: nn.Module) -> None:
    """The authors' initialisation, in place, for every submodule of ``module``.

    Conv2d: N(0, sqrt(2 / (kh * kw * out_channels))); BatchNorm2d: weight 1, bias 0;
    Linear: N(0, 0.01), bias 0.
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class BlockConvs(NamedTuple):
    """The convolution builders of a Micro-Block: a hook for variants built from the same rows.

    ``pointwise(in_channels, out_channels, groups)``: a module (N, in, H, W) -> (N, out, H, W)
    for each grouped 1x1 layer (``expand`` / ``project``). ``depthwise(channels, kernel_size,
    stride, expansion)``: a module (N, C, H, W) -> (N, C * e1 * e2, ceil(H / s), ceil(W / s))
    for the ``depthwise`` layer. :data:`MICRO_FACTORIZED` is MicroNet's own; the full-rank
    partner (:mod:`micronet_backbones.full_rank`) passes dense ones.
    """

    pointwise: Callable[[int, int, int], nn.Module] = GroupedPointwise
    depthwise: Callable[[int, int, int, tuple[int, int]], nn.Module] = MicroFactorizedDepthwise


MICRO_FACTORIZED = BlockConvs()


def _shift_max_or(
    code: int,
    channels: int,
    groups: int,
    reduction: int,
    init: tuple[tuple[float, float], ...],
    spec: BlockSpec,
    otherwise: nn.Module,
) -> nn.Module:
    """Dynamic Shift-Max with K = ``code`` (J = 2), or ``otherwise`` when ``code`` is 0."""
    if code == 0:
        return otherwise
    return DynamicShiftMax(
        channels,
        groups,
        num_shifts=2,
        num_fusions=code,
        reduction=reduction,
        init=init[:code],
        coefficient_range=spec.coefficient_range,
    )


def _shuffles(*groups: int | None) -> nn.Sequential:
    """Channel shuffles applied one after the other (an empty Sequential is the identity)."""
    return nn.Sequential(*(ChannelShuffle(g) for g in groups if g is not None))


def _inner_init(spec: BlockSpec) -> tuple[tuple[float, float], ...]:
    """K x J offsets of the Shift-Maxes after the first layer and the depthwise pair."""
    return ((spec.init_a[0], spec.init_b[0]), (spec.init_a[1], spec.init_b[1]))


class Stem(LayerChain):
    """MicroNet's stem: (N, 3, H, W) -> (N, g1 * g2, ceil(H / 2), ceil(W / 2)).

    ``conv_kx1`` (3x1, stride (2, 1)): 3 -> g1, ``bn_kx1``; ``conv_1xk`` (1x3, stride (1, 2),
    g1 groups): g1 -> g1 * g2, ``bn_1xk``; ``shuffle`` (g1 groups); ``act`` (ReLU6), in the
    order of ``layer_names``.
    """

    layer_names = ("conv_kx1", "bn_kx1", "conv_1xk", "bn_1xk", "shuffle", "act")

    def __init__(
        self, groups: tuple[int, int], in_channels: int = 3, kernel_size: int = 3, stride: int = 2
    ) -> None:
        super().__init__()
        g1, g2 = groups
        pad = kernel_size // 2
        self.in_channels = in_channels
        self.out_channels = g1 * g2
        self.stride = stride
        self.conv_kx1 = nn.Conv2d(
            in_channels, g1, (kernel_size, 1), (stride, 1), (pad, 0), bias=False
        )
        self.bn_kx1 = nn.BatchNorm2d(g1)
        self.conv_1xk = nn.Conv2d(
            g1, g1 * g2, (1, kernel_size), (1, stride), (0, pad), groups=g1, bias=False
        )
        self.bn_1xk = nn.BatchNorm2d(g1 * g2)
        self.shuffle = ChannelShuffle(g1)
        self.act = nn.ReLU6(inplace=True)
        init_weights_(self)


class MicroBlock(LayerChain):
    """Base of Micro-Blocks A, B and C: the spec row, the stride actually used, the shortcut.

    ``forward(x)`` runs the layers named by the class's ``layer_names`` in order, plus ``x``
    when ``use_residual`` (its ``chain_forward``). Subclasses declare their layers in
    ``layer_names`` and do not override ``forward``: the inference form reads the same list
    (``ordered_layers()``), which refuses a block whose ``forward`` is another one.
    """

    def __init__(self, spec: BlockSpec, kind: str, stride: int | None) -> None:
        super().__init__()
        if spec.kind != kind:
            raise ValueError(f"Micro-Block-{kind} needs a row of kind {kind!r}, got {spec.kind!r}")
        self.spec = spec
        self.in_channels = spec.in_channels
        self.out_channels = spec.out_channels
        # A model built for a smaller output stride runs some blocks at stride 1 instead of 2;
        # the shortcut still follows the row (it does in every released row either way).
        self.stride = spec.stride if stride is None else stride
        self.use_residual = spec.has_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.run_layers(x)
        return out + x if self.use_residual else out

    chain_forward = forward


class MicroBlockA(MicroBlock):
    """Micro-Block-A, the lite combination (see the module docstring for its layers).

    (N, in, H, W) -> (N, out, H / s, W / s). Args: ``spec`` (kind "A"); ``stride`` overrides
    ``spec.stride`` (weights are unchanged by it).
    """

    layer_names = (
        "depthwise", "act_depthwise", "shuffle_depthwise", "project", "act_project",
        "shuffle_project",
    )  # fmt: skip

    def __init__(
        self, spec: BlockSpec, *, stride: int | None = None, convs: BlockConvs = MICRO_FACTORIZED
    ) -> None:
        super().__init__(spec, "A", stride)
        hidden = spec.hidden_channels
        _, g2 = spec.expand_groups
        g3, g4 = spec.project_groups
        _, y2, y3 = spec.activations
        out = spec.out_channels
        self.depthwise = convs.depthwise(
            spec.in_channels, spec.kernel_size, self.stride, spec.expansion
        )
        self.act_depthwise = _shift_max_or(
            y2, hidden, g2, spec.reduction, _inner_init(spec), spec, nn.ReLU6(inplace=True)
        )
        self.shuffle_depthwise = _shuffles(g2, hidden // 2 if y2 else None)
        self.project = convs.pointwise(hidden, out, g3)
        self.act_project = _shift_max_or(
            y3, out, g4, spec.reduction // 2, (spec.project_init,), spec, nn.Identity()
        )
        self.shuffle_project = _shuffles(g4, out // 2 if y3 and out % 2 == 0 else None)
        init_weights_(self)


class MicroBlockB(MicroBlock):
    """Micro-Block-B, pointwise expansion (see the module docstring for its layers).

    (N, in, H, W) -> (N, out, H, W) with out = in * e1 * e2. ``spec`` must be of kind "B".
    """

    layer_names = ("expand", "act_expand")

    def __init__(
        self, spec: BlockSpec, *, stride: int | None = None, convs: BlockConvs = MICRO_FACTORIZED
    ) -> None:
        super().__init__(spec, "B", stride)
        if self.stride != 1:
            raise ValueError("a B block has no spatial layer: its stride must be 1")
        hidden = spec.hidden_channels
        g1, g2 = spec.expand_groups
        self.expand = convs.pointwise(spec.in_channels, hidden, g1)
        self.act_expand = _shift_max_or(
            spec.activations[2],
            hidden,
            g2,
            spec.reduction,
            (spec.project_init,),
            spec,
            nn.Identity(),
        )
        init_weights_(self)


class MicroBlockC(MicroBlock):
    """Micro-Block-C, the regular combination (see the module docstring for its layers).

    (N, in, H, W) -> (N, out, H / s, W / s). Args: ``spec`` (kind "C"); ``stride`` overrides
    ``spec.stride`` (weights are unchanged by it).
    """

    layer_names = (
        "expand", "act_expand", "shuffle_expand", "depthwise", "act_depthwise",
        "shuffle_depthwise", "project", "act_project", "shuffle_project",
    )  # fmt: skip

    def __init__(
        self, spec: BlockSpec, *, stride: int | None = None, convs: BlockConvs = MICRO_FACTORIZED
    ) -> None:
        super().__init__(spec, "C", stride)
        hidden = spec.hidden_channels
        g1, g2 = spec.expand_groups
        g3, g4 = spec.project_groups
        y1, y2, y3 = spec.activations
        out = spec.out_channels
        inner = _inner_init(spec)
        self.expand = convs.pointwise(spec.in_channels, hidden, g1)
        self.act_expand = _shift_max_or(
            y1, hidden, g2, spec.reduction, inner, spec, nn.ReLU6(inplace=True)
        )
        self.shuffle_expand = _shuffles(g2)
        self.depthwise = convs.depthwise(hidden, spec.kernel_size, self.stride, (1, 1))
        # After the depthwise pair the shift works on groups of g2 channels (hidden / g2 groups).
        depthwise_groups = hidden // g2 if g2 != 1 else 1
        self.act_depthwise = _shift_max_or(
            y2, hidden, depthwise_groups, spec.reduction, inner, spec, nn.ReLU6(inplace=True)
        )
        if y1 and y2:
            self.shuffle_depthwise = _shuffles(hidden // 4)
        elif y1 or y2:
            self.shuffle_depthwise = _shuffles(hidden // 2)
        else:
            self.shuffle_depthwise = _shuffles()
        self.project = convs.pointwise(hidden, out, g3)
        project_reduction = spec.reduction // 2 if out < hidden else spec.reduction
        self.act_project = _shift_max_or(
            y3, out, g4, project_reduction, (spec.project_init,), spec, nn.Identity()
        )
        self.shuffle_project = _shuffles(g4, out // 2 if y3 else None)
        init_weights_(self)


_BLOCKS = {"A": MicroBlockA, "B": MicroBlockB, "C": MicroBlockC}


def block_from_spec(
    spec: BlockSpec, *, stride: int | None = None, convs: BlockConvs = MICRO_FACTORIZED
) -> MicroBlock:
    """Build the Micro-Block a row describes (``stride`` overrides the row's stride; ``convs``
    builds its convolutions, see :class:`BlockConvs`)."""
    return _BLOCKS[spec.kind](spec, stride=stride, convs=convs)
