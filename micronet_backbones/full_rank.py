"""The full-rank partner of a MicroNet, for mutual learning.

The earlier version of the MicroNet paper (arXiv 2011.12289v1) trains every MicroNet together with a *full-rank
partner*: the same widths and depth, in which each Micro-Factorized convolution is replaced by
the layer it factorizes; the two networks learn from each other's predictions
(:mod:`micronet_backbones.imagenet.mutual`). The partner is built from the **same spec rows** as
the MicroNet, through the blocks' convolution hook (:class:`~micronet_backbones.blocks.BlockConvs`):

* every grouped 1x1 convolution of the blocks (``expand`` / ``project``, the factors P and Q^T
  of a Micro-Factorized pointwise convolution) becomes a dense 1x1 convolution (groups = 1),
  still followed by its BatchNorm;
* every factorized depthwise convolution (``depthwise``: k x 1 then 1 x k, two BatchNorms)
  becomes one k x k depthwise convolution with the same stride, followed by one BatchNorm.

In Micro-Block-A the factorized depthwise also *expands* the channels: k x 1 with C groups maps
C -> C * e1, then 1 x k with C * e1 groups maps C * e1 -> C * e1 * e2, so each output channel
sees one input channel through a k x k kernel that is the outer product of a k x 1 and a 1 x k
kernel (rank 1). Its full-rank form is the k x k convolution with C groups and channel multiplier
e1 * e2 (C -> C * e1 * e2): every output channel gets its own unconstrained k x k kernel on the
same input channel ``o // (e1 * e2)``, in the same channel order. With e1 = e2 = 1 (Micro-Block-C)
that is a plain k x k depthwise convolution.

Everything else is the MicroNet's: the stem (its 3 x 1 / 1 x 3 pair included), the channel
shuffles, every Dynamic Shift-Max (same groups, K, J, reduction and offsets), the shortcuts and
the classifier head.
"""

from __future__ import annotations

from torch import nn

from .blocks import BlockConvs
from .model import MicroNet
from .ops import GroupedPointwise, LayerChain
from .registry import get_spec
from .specs import MicroNetSpec

__all__ = ["FULL_RANK", "FullRankDepthwise", "full_rank_partner"]


class FullRankDepthwise(LayerChain):
    """k x k depthwise convolution with channel multiplier e1 * e2, then BatchNorm.

    (N, C, H, W) -> (N, C * e1 * e2, H', W'), H' = floor((H + 2 * (k // 2) - k) / s) + 1 (the
    same sizes and channel order as :class:`~micronet_backbones.ops.MicroFactorizedDepthwise`
    with the same arguments). Attributes ``conv`` (``nn.Conv2d``, C groups, bias-free) and ``bn``,
    run in the order of ``layer_names`` (a :class:`~micronet_backbones.ops.LayerChain`).
    """

    layer_names = ("conv", "bn")

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        expansion: tuple[int, int] = (1, 1),
    ) -> None:
        super().__init__()
        e1, e2 = expansion
        self.in_channels = channels
        self.out_channels = channels * e1 * e2
        self.conv = nn.Conv2d(
            channels,
            self.out_channels,
            kernel_size,
            stride,
            kernel_size // 2,
            groups=channels,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(self.out_channels)


def _dense_pointwise(in_channels: int, out_channels: int, groups: int) -> GroupedPointwise:
    """The dense 1x1 convolution (+ BatchNorm) in place of a grouped one (``groups`` unused)."""
    return GroupedPointwise(in_channels, out_channels, 1)


FULL_RANK = BlockConvs(pointwise=_dense_pointwise, depthwise=FullRankDepthwise)


def full_rank_partner(name_or_spec: str | MicroNetSpec, **kwargs) -> MicroNet:
    """The full-rank partner of a MicroNet (see the module docstring), randomly initialised
    as the authors initialise MicroNet.

    Args:
        name_or_spec: a registry name ("micronet_m0" or "m0", ...) or a :class:`MicroNetSpec`.
        **kwargs: passed to :class:`~micronet_backbones.model.MicroNet` (``num_classes``,
            ``features_only``, ``out_strides``, ``output_stride``, ``dropout``).

    Returns:
        a :class:`~micronet_backbones.model.MicroNet` whose blocks use :data:`FULL_RANK`
        convolutions; ``forward`` maps (N, 3, H, W) exactly as the MicroNet does (logits
        (N, num_classes), or the same feature maps with ``features_only``).
    """
    spec = name_or_spec if isinstance(name_or_spec, MicroNetSpec) else get_spec(name_or_spec)
    if "convs" in kwargs:
        raise TypeError("full_rank_partner() sets the convolutions itself; do not pass convs")
    return MicroNet(spec, convs=FULL_RANK, **kwargs)
