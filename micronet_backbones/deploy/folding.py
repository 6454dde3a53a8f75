"""Exact algebra behind the inference form: BatchNorm folding and k x 1 / 1 x k merging.

All folding is computed in float64 and stored in the original dtype, so the folded layers differ
from the original ones by float rounding only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["SeparablePair", "fold_batchnorm", "fold_linear_batchnorm", "merge_separable"]


def _bn_scale_shift(bn: nn.Module, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of an eval-mode BatchNorm, or (1, 0) for ``nn.Identity``; float64."""
    if isinstance(bn, nn.Identity):
        return torch.ones(channels, dtype=torch.float64), torch.zeros(channels, dtype=torch.float64)
    if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_mean is None:
        raise TypeError(
            f"cannot fold {type(bn).__name__}: expected a BatchNorm with running statistics "
            "or nn.Identity"
        )
    if bn.num_features != channels:
        raise ValueError(f"BatchNorm has {bn.num_features} features, the layer gives {channels}")
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    return scale, shift


def fold_batchnorm(conv: nn.Conv2d, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(conv(x)) == F.conv2d(x, weight, bias, ...)`` (conv's other settings unchanged).

    Returns float64 (weight (O, I / groups, kh, kw), bias (O,)). ``bn`` may be ``nn.Identity``.
    """
    scale, shift = _bn_scale_shift(bn, conv.out_channels)
    weight = conv.weight.detach().double() * scale.view(-1, 1, 1, 1)
    bias = shift if conv.bias is None else shift + conv.bias.detach().double() * scale
    return weight, bias


def fold_linear_batchnorm(linear: nn.Linear, bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """``bn(linear(x)) == F.linear(x, weight, bias)`` for an eval-mode BatchNorm1d; float64."""
    scale, shift = _bn_scale_shift(bn, linear.out_features)
    weight = linear.weight.detach().double() * scale[:, None]
    bias = shift if linear.bias is None else shift + linear.bias.detach().double() * scale
    return weight, bias


@dataclass
class SeparablePair:
    """A k x k convolution equal to a (kh x 1) conv, an affine map, then a (1 x kw) conv.

    ``weight`` (O, I / groups, kh, kw) and ``bias`` (O,) give the interior exactly. Near the
    left and right borders the second conv's zero padding drops the intermediate bias from the
    taps that fall outside; :meth:`column_correction` gives what to add there.

    Attributes:
        weight, bias: float64 merged kernel and interior bias.
        stride, padding, groups: of the merged conv ((sh, sw), (ph, pw), groups of the first).
        inner_bias: (O,) float64, the intermediate bias each output channel reads.
        second_taps: (O, kw) float64, the 1 x kw kernel of each output channel.
    """

    weight: torch.Tensor
    bias: torch.Tensor
    stride: tuple[int, int]
    padding: tuple[int, int]
    groups: int
    inner_bias: torch.Tensor
    second_taps: torch.Tensor

    def column_correction(self, in_width: int) -> torch.Tensor | None:
        """(O, 1, W_out) float64 to add to the merged conv's output, or None if all zero.

        Output column j reads intermediate columns ``j * sw - pw + t`` (t < kw); where such a
        column is outside [0, in_width) the original adds nothing (zero padding) while the
        merged bias counts ``inner_bias * second_taps[:, t]``: subtract it. (Plain Python
        decides which taps fall outside, so tracing records no data-dependent branch.)
        """
        kw = self.second_taps.shape[1]
        sw, pw = self.stride[1], self.padding[1]
        out_width = (in_width + 2 * pw - kw) // sw + 1
        outside = [
            [1.0 if not 0 <= j * sw - pw + t < in_width else 0.0 for t in range(kw)]
            for j in range(out_width)
        ]
        if not self.has_inner_bias or not any(map(any, outside)):
            return None
        dropped = self.second_taps @ torch.tensor(outside, dtype=torch.float64).t()  # (O, W_out)
        return (-self.inner_bias[:, None] * dropped).unsqueeze(1)

    def __post_init__(self) -> None:
        self.has_inner_bias = bool(self.inner_bias.any())

    def with_outputs(self, index: torch.Tensor) -> SeparablePair:
        """The same pair with its output channels reordered: output ``o`` of the new pair is
        output ``index[o]`` of this one (``index``: (O,) long)."""
        return dataclasses.replace(
            self,
            weight=self.weight[index],
            bias=self.bias[index],
            inner_bias=self.inner_bias[index],
            second_taps=self.second_taps[index],
        )


def merge_separable(
    first: nn.Conv2d, first_bn: nn.Module, second: nn.Conv2d, second_bn: nn.Module
) -> SeparablePair:
    """Merge ``second_bn(second(first_bn(first(x))))`` into one k x k convolution.

    ``first``: (kh x 1) kernel, stride (sh, 1), padding (ph, 0), any groups.
    ``second``: (1 x kw) kernel, stride (1, sw), padding (0, pw), one group per input channel
    (each intermediate channel feeds ``second.out_channels / second.in_channels`` outputs).
    No dilation, no other padding. The merged conv has the groups of ``first``.
    """
    problems = []
    if first.kernel_size[1] != 1 or first.stride[1] != 1 or first.padding[1] != 0:
        problems.append(f"first conv must be (k x 1) with width stride 1, padding 0: {first}")
    if second.kernel_size[0] != 1 or second.stride[0] != 1 or second.padding[0] != 0:
        problems.append(f"second conv must be (1 x k) with height stride 1, padding 0: {second}")
    if second.groups != second.in_channels or second.in_channels != first.out_channels:
        problems.append(f"second conv must be depthwise over the first's output: {second}")
    if any(d != 1 for d in (*first.dilation, *second.dilation)):
        problems.append("dilated convolutions are not merged")
    if first.padding_mode != "zeros" or second.padding_mode != "zeros":
        problems.append("only zero padding is merged")
    if problems:
        raise ValueError("cannot merge the separable pair: " + "; ".join(problems))

    w1, b1 = fold_batchnorm(first, first_bn)  # (M, I / g, kh, 1), (M,)
    w2, b2 = fold_batchnorm(second, second_bn)  # (O, 1, 1, kw), (O,)
    outputs_per_inner = second.out_channels // second.in_channels
    inner = torch.arange(second.out_channels) // outputs_per_inner  # intermediate channel of o
    taps = w2[:, 0, 0, :]  # (O, kw)
    weight = w1[inner][:, :, :, 0][:, :, :, None] * taps[:, None, None, :]  # (O, I/g, kh, kw)
    inner_bias = b1[inner]
    return SeparablePair(
        weight=weight,
        bias=b2 + inner_bias * taps.sum(1),
        stride=(first.stride[0], second.stride[1]),
        padding=(first.padding[0], second.padding[1]),
        groups=first.groups,
        inner_bias=inner_bias,
        second_taps=taps,
    )
