"""A k x 1 then 1 x k convolution pair (BatchNorms included) as one k x k convolution."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels
from .folding import fold_batchnorm, merge_separable
from .permutation import exporting, fixed_shape, inverse_permutation

__all__ = ["MergedSeparableConv"]


def _depthwise_outputs_moved(index: torch.Tensor, outputs: int) -> torch.Tensor:
    """(outputs,) new position of each output of a depthwise conv (``index.numel()`` groups,
    m = outputs / groups outputs each) whose inputs are permuted by ``index``: output ``o``
    reads input ``index[o // m]`` and moves to ``index[o // m] * m + o % m``."""
    m = outputs // index.numel()
    o = torch.arange(outputs)
    return index[o // m] * m + o % m


class MergedSeparableConv(nn.Module):
    """(N, I, H, W) -> (N, O, H', W'): ``bn2(conv_1xk(bn1(conv_kx1(x))))`` as one k x k conv.

    Exact, borders included: the 1 x k conv zero-pads the *intermediate* map, whose BN bias the
    merged kernel would otherwise also count in the padded columns, so the first and last output
    columns get a per-column correction (an (O, 1, W') map added to the output, built once per
    input width). With no non-linearity between the two convs (MicroNet's Micro-Factorized
    depthwise convolution and its stem), this is the same function with one conv instead of two.

    ``output_index`` (optional, (O,)) permutes the output channels; allowed when the merged conv
    has a single group (any permutation of a dense conv's rows is free), as in the stem.

    Exported graphs (ONNX) of a depthwise pair keep the two convs instead (BN folded into each,
    so no correction is needed): onnxruntime runs two depthwise convs faster than one k x k
    conv plus the correction. With the native kernels built, eager float32 CPU calls of a
    depthwise k x k (k = 3, 5) run ``micronet::depthwise_conv``, correction included (about
    half the time of oneDNN's convolution on MicroNet's NCHW shapes, measured by
    ``tools/benchmark.py``).

    Buffers: ``weight`` (O, I / groups, kh, kw), ``bias`` (O,); for a depthwise pair also
    ``first_weight`` (M, 1, kh, 1), ``first_bias`` (M,), ``second_weight`` (O, 1, 1, kw),
    ``second_bias`` (O,).
    """

    def __init__(
        self,
        first: nn.Conv2d,
        first_bn: nn.Module,
        second: nn.Conv2d,
        second_bn: nn.Module,
        output_index: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        pair = merge_separable(first, first_bn, second, second_bn)
        if output_index is not None:
            if pair.groups != 1:
                raise ValueError("an output permutation can only be folded into a dense conv")
            pair = pair.with_outputs(output_index)
        dtype = first.weight.dtype
        self.stride = pair.stride
        self.padding = pair.padding
        self.groups = pair.groups
        self.register_buffer("weight", pair.weight.to(dtype))
        self.register_buffer("bias", pair.bias.to(dtype))
        self.depthwise = first.groups == first.in_channels and output_index is None
        if self.depthwise:
            w1, b1 = fold_batchnorm(first, first_bn)
            w2, b2 = fold_batchnorm(second, second_bn)
            self.register_buffer("first_weight", w1.to(dtype))
            self.register_buffer("first_bias", b1.to(dtype))
            self.register_buffer("second_weight", w2.to(dtype))
            self.register_buffer("second_bias", b2.to(dtype))
            self._first_conv = (first.stride, first.padding, first.groups)
            self._second_conv = (second.stride, second.padding, second.groups)
        self._pair = pair  # float64 copy for the corrections, built on demand
        self._corrections: dict[tuple[int, torch.dtype, torch.device], torch.Tensor | None] = {}

    def column_correction(self, in_width: int, like: torch.Tensor) -> torch.Tensor | None:
        """(O, 1, W') correction for inputs ``in_width`` wide (cached), or None if zero."""
        key = (in_width, like.dtype, like.device)
        if key not in self._corrections:
            correction = self._pair.column_correction(in_width)
            if correction is not None:
                correction = correction.to(dtype=like.dtype, device=like.device)
            self._corrections[key] = correction
        return self._corrections[key]

    def _apply(self, fn, recurse=True):
        # Moving / casting the module invalidates the cached corrections.
        self._corrections = {}
        return super()._apply(fn, recurse)

    def absorb_input_permutation(self, index: torch.Tensor) -> torch.Tensor:
        """Make ``self(x[:, index]) == self'(x)[:, returned]`` by permuting the weights.

        Only for a depthwise conv (one group per input channel, m outputs each): output ``o``
        then reads input ``index[o // m]``, which the new conv keeps at output
        ``index[o // m] * m + o % m``; the returned index puts the outputs back in order.
        """
        if self.weight.shape[1] != 1 or index.numel() != self.groups:
            raise ValueError("only a depthwise conv absorbs an input permutation")
        moved = _depthwise_outputs_moved(index, self.weight.shape[0])
        inverse = inverse_permutation(moved)
        self._pair = self._pair.with_outputs(inverse)
        self.weight = self.weight[inverse]
        self.bias = self.bias[inverse]
        self._corrections = {}
        if self.depthwise:
            # The first conv's outputs move by blocks of its own multiplier.
            first = inverse_permutation(_depthwise_outputs_moved(index, self.first_weight.shape[0]))
            self.first_weight = self.first_weight[first]
            self.first_bias = self.first_bias[first]
            self.second_weight = self.second_weight[inverse]
            self.second_bias = self.second_bias[inverse]
        return moved

    def _native(self, x: torch.Tensor) -> bool:
        """``micronet::depthwise_conv`` applies: a depthwise (one input channel per group)
        square 3x3 / 5x5 kernel, equal strides 1 or 2 and paddings, float32 on the CPU, not
        exporting, and the native kernels built."""
        if exporting() or x.dtype != torch.float32 or x.device.type != "cpu":
            return False
        _, i, kh, kw = self.weight.shape
        return (
            i == 1
            and kh == kw
            and kh in (3, 5)
            and self.stride[0] == self.stride[1]
            and self.stride[0] in (1, 2)
            and self.padding[0] == self.padding[1]
            and kernels.native_available()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.depthwise and exporting():
            stride, padding, groups = self._first_conv
            x = F.conv2d(x, self.first_weight, self.first_bias, stride, padding, 1, groups)
            stride, padding, groups = self._second_conv
            return F.conv2d(x, self.second_weight, self.second_bias, stride, padding, 1, groups)
        if self._native(x):
            correction = self.column_correction(x.shape[-1], x)
            return torch.ops.micronet.depthwise_conv(
                x, self.weight, self.bias, self.stride[0], self.padding[0], correction
            )
        out = F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)
        # A traced graph is for the traced spatial size: the correction is a constant of it.
        correction = self.column_correction(fixed_shape(x)[-1], out)
        if correction is None:
            return out
        return out.add_(correction)

    def extra_repr(self) -> str:
        o, i, kh, kw = self.weight.shape
        return (
            f"{i * self.groups}, {o}, kernel_size=({kh}, {kw}), stride={self.stride}, "
            f"padding={self.padding}, groups={self.groups}"
        )
