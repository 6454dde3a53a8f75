"""Micro-Factorized convolutions (MicroNet, Li et al., ICCV 2021, Section 3).

Micro-Factorized *pointwise* convolution factorizes a C_out x C_in 1x1 convolution matrix as

    W = P . Phi . Q^T                                                        (paper Eq. 1)

where Q^T (C/R x C_in) and P (C_out x C/R) are block-diagonal with G blocks (two group
convolutions), Phi is a C/R x C/R channel-shuffle permutation and R is the channel reduction.
Connectivity is kept at one path between every input and output channel when

    G = sqrt(C / R)                                                          (paper Eq. 2)

in which case W is made of G x G blocks, each of rank 1.

Micro-Factorized *depthwise* convolution factorizes a k x k depthwise kernel into a k x 1 and a
1 x k depthwise kernel (paper Eq. 3); in MicroNet each of the two may also multiply the number of
channels (the "lite" combination that expands channels in the depthwise part).

All convolutions here are bias-free ``nn.Conv2d`` followed, where a norm is used, by a plain
``nn.BatchNorm2d`` held as its own attribute, so BatchNorm folding, ``FrozenBatchNorm2d`` and
``SyncBatchNorm`` conversion work on them unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .layer_chain import LayerChain

__all__ = [
    "ChannelShuffle",
    "GroupedPointwise",
    "MicroFactorizedDepthwise",
    "MicroFactorizedPointwise",
    "micro_factorized_groups",
]


class ChannelShuffle(nn.Module):
    """Channel shuffle (ShuffleNet): the permutation Phi of Eq. 1.

    Input (N, C, H, W) with C divisible by ``groups``; output has the same shape. Channels are
    viewed as a (groups, C / groups) matrix and transposed, so output channel ``m * groups + g``
    is input channel ``g * (C / groups) + m``. ``groups`` of 1 or C is the identity.
    """

    def __init__(self, groups: int) -> None:
        super().__init__()
        if groups < 1:
            raise ValueError(f"ChannelShuffle needs groups >= 1, got {groups}")
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if not torch.jit.is_tracing() and c % self.groups:
            raise ValueError(
                f"ChannelShuffle(groups={self.groups}) needs channels divisible by {self.groups}, "
                f"got input of shape {tuple(x.shape)}"
            )
        x = x.reshape(n, self.groups, c // self.groups, h, w)
        return x.transpose(1, 2).reshape(n, c, h, w)

    def permutation(self, channels: int) -> torch.Tensor:
        """Index ``p`` such that ``forward(x) == x[:, p]`` for ``channels`` input channels:
        (channels,) long. The one definition of the shuffle's order besides ``forward``."""
        if channels % self.groups:
            raise ValueError(
                f"ChannelShuffle(groups={self.groups}) needs channels divisible by "
                f"{self.groups}, got {channels}"
            )
        return torch.arange(channels).view(self.groups, channels // self.groups).t().reshape(-1)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class GroupedPointwise(LayerChain):
    """One factor (P or Q^T) of a Micro-Factorized pointwise convolution: a grouped 1x1 conv + BN.

    (N, in_channels, H, W) -> (N, out_channels, H, W). Attributes ``conv`` (bias-free
    ``nn.Conv2d``, ``groups`` groups) and ``bn`` (``nn.BatchNorm2d``).
    """

    layer_names = ("conv", "bn")

    def __init__(self, in_channels: int, out_channels: int, groups: int = 1) -> None:
        super().__init__()
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.conv = nn.Conv2d(in_channels, out_channels, 1, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)


def _nearest_common_divisor(target: float, *numbers: int) -> int:
    """The common divisor of ``numbers`` nearest to ``target`` (ties go to the smaller one)."""
    common = math.gcd(*numbers)
    divisors = [g for g in range(1, common + 1) if common % g == 0]
    return min(divisors, key=lambda g: (abs(g - target), g))


def micro_factorized_groups(channels: int, reduction: int, lam: float = 1.0) -> int:
    """Group number of a Micro-Factorized pointwise conv: ``G = lam * sqrt(C / R)`` (Eq. 2).

    The ideal value is rounded to the nearest valid group number, i.e. the nearest common
    divisor of ``C`` and ``C / R`` (ties go to the smaller G). ``C / R`` must be an integer.
    """
    if channels % reduction:
        raise ValueError(f"reduction={reduction} must divide channels={channels}")
    return _nearest_common_divisor(
        lam * math.sqrt(channels / reduction), channels, channels // reduction
    )


class MicroFactorizedPointwise(LayerChain):
    """Micro-Factorized pointwise convolution ``W = P . Phi . Q^T`` (paper Eq. 1).

    (N, in_channels, H, W) -> (N, out_channels, H, W), computed as

    * ``squeeze``  (Q^T): grouped 1x1 conv, in_channels -> hidden_channels, G groups
    * ``shuffle``  (Phi): ``ChannelShuffle(G)``
    * ``expand``   (P):   grouped 1x1 conv, hidden_channels -> out_channels, G groups

    ``hidden_channels = in_channels // reduction`` (C / R) unless given. ``groups`` defaults to
    ``G = lam * sqrt(C / R)`` (Eq. 2) rounded to the nearest common divisor of the three widths
    (see :func:`micro_factorized_groups`); an explicit ``groups`` must divide all three. With ``norm=True`` each conv is followed by its own ``nn.BatchNorm2d``
    (``squeeze_bn`` / ``expand_bn``); with ``norm=False`` (default) the layer is linear and
    :meth:`dense_weight` gives its equivalent (out_channels, in_channels) matrix, which for
    ``G = sqrt(C / R)`` consists of G x G blocks of rank 1.
    """

    layer_names = ("squeeze", "squeeze_bn", "shuffle", "expand", "expand_bn")

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        *,
        reduction: int = 1,
        groups: int | None = None,
        hidden_channels: int | None = None,
        lam: float = 1.0,
        norm: bool = False,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if hidden_channels is None:
            if in_channels % reduction:
                raise ValueError(f"reduction={reduction} must divide in_channels={in_channels}")
            hidden_channels = in_channels // reduction
        if groups is None:
            # Eq. 2 with C / R = hidden_channels, rounded to a divisor of all three widths.
            groups = _nearest_common_divisor(
                lam * math.sqrt(hidden_channels), in_channels, hidden_channels, out_channels
            )
        for name, value in (
            ("in", in_channels),
            ("hidden", hidden_channels),
            ("out", out_channels),
        ):
            if value % groups:
                raise ValueError(f"groups={groups} must divide {name}_channels={value}")
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.out_channels = out_channels
        self.groups = groups
        self.squeeze = nn.Conv2d(in_channels, hidden_channels, 1, groups=groups, bias=False)
        self.squeeze_bn = nn.BatchNorm2d(hidden_channels) if norm else nn.Identity()
        self.shuffle = ChannelShuffle(groups)
        self.expand = nn.Conv2d(hidden_channels, out_channels, 1, groups=groups, bias=False)
        self.expand_bn = nn.BatchNorm2d(out_channels) if norm else nn.Identity()

    @staticmethod
    def _block_diagonal(conv: nn.Conv2d) -> torch.Tensor:
        """Dense (out, in) matrix of a grouped 1x1 convolution."""
        g = conv.groups
        out_per_group = conv.out_channels // g
        weight = conv.weight[:, :, 0, 0]  # (out, in / g)
        blocks = [weight[i * out_per_group : (i + 1) * out_per_group] for i in range(g)]
        return torch.block_diag(*blocks)

    def dense_weight(self) -> torch.Tensor:
        """The (out_channels, in_channels) matrix ``P . Phi . Q^T`` of this layer (norm=False)."""
        if not isinstance(self.squeeze_bn, nn.Identity):
            raise ValueError("dense_weight() is defined for the linear layer (norm=False) only")
        q_t = self._block_diagonal(self.squeeze)  # (hidden, in)
        p = self._block_diagonal(self.expand)  # (out, hidden)
        perm = self.shuffle.permutation(self.hidden_channels)
        phi = torch.eye(self.hidden_channels, dtype=q_t.dtype, device=q_t.device)[perm]
        return p @ phi @ q_t

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


class MicroFactorizedDepthwise(LayerChain):
    """Micro-Factorized depthwise convolution: k x k depthwise as k x 1 then 1 x k (Eq. 3).

    (N, C, H, W) -> (N, C * e1 * e2, H', W') with ``expansion = (e1, e2)``:

    * ``conv_kx1`` (k x 1, stride (s, 1), ``groups=C``): C -> C * e1, then ``bn_kx1``
    * ``conv_1xk`` (1 x k, stride (1, s), ``groups=C * e1``): C * e1 -> C * e1 * e2, then ``bn_1xk``

    Padding is k // 2, so H' = floor((H + 2 * (k // 2) - k) / s) + 1 (likewise W'). With
    ``expansion=(1, 1)`` this is a depthwise conv; larger factors give MicroNet's "lite"
    combination, in which the depthwise part expands the channels. ``norm=False`` drops the two
    BatchNorms (then, with ``expansion=(1, 1)``, the layer equals a k x k depthwise conv whose
    kernel is the outer product of the two 1-D kernels).
    """

    layer_names = ("conv_kx1", "bn_kx1", "conv_1xk", "bn_1xk")

    def __init__(
        self,
        channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        expansion: tuple[int, int] = (1, 1),
        norm: bool = True,
    ) -> None:
        super().__init__()
        e1, e2 = expansion
        mid = channels * e1
        self.in_channels = channels
        self.out_channels = mid * e2
        pad = kernel_size // 2
        self.conv_kx1 = nn.Conv2d(
            channels, mid, (kernel_size, 1), (stride, 1), (pad, 0), groups=channels, bias=False
        )
        self.bn_kx1 = nn.BatchNorm2d(mid) if norm else nn.Identity()
        self.conv_1xk = nn.Conv2d(
            mid, self.out_channels, (1, kernel_size), (1, stride), (0, pad), groups=mid, bias=False
        )
        self.bn_1xk = nn.BatchNorm2d(self.out_channels) if norm else nn.Identity()
