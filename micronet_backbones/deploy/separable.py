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
    conv plus the correction. With the native kernels built, float32 CPU calls (not exporting)
    run the pair itself, ``micronet::separable_conv`` (2k multiply-adds per output instead of
    k * k, exact with no correction; the stem's output permutation included).

    Buffers: ``weight`` (O, I / groups, kh, kw), ``bias`` (O,); the folded pair
    ``first_weight`` (M, I / groups, kh, 1), ``first_bias`` (M,), ``second_weight``
    (O, 1, 1, kw), ``second_bias`` (O,) (outputs in the pair's order, before
    ``output_index``); ``output_index`` (O,) when the outputs are permuted.
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
        # The folded pair itself (the native kernel and the exported depthwise pair run it).
        w1, b1 = fold_batchnorm(first, first_bn)
        w2, b2 = fold_batchnorm(second, second_bn)
        self.register_buffer("first_weight", w1.to(dtype))
        self.register_buffer("first_bias", b1.to(dtype))
        self.register_buffer("second_weight", w2.to(dtype))
        self.register_buffer("second_bias", b2.to(dtype))
        if output_index is not None:
            self.register_buffer("output_index", output_index.to(torch.long).clone())
        else:
            self.output_index = None
        self._first_conv = (first.stride, first.padding, first.groups)
        self._second_conv = (second.stride, second.padding, second.groups)
        # micronet::separable_conv: one k for both convs, one stride and one padding.
        self._native_pair = (
            first.kernel_size[0] == second.kernel_size[1]
            and first.stride[0] == second.stride[1]
            and first.padding[0] == second.padding[1]
        )
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
        # The first conv's outputs move by blocks of its own multiplier.
        first = inverse_permutation(_depthwise_outputs_moved(index, self.first_weight.shape[0]))
        self.first_weight = self.first_weight[first]
        self.first_bias = self.first_bias[first]
        self.second_weight = self.second_weight[inverse]
        self.second_bias = self.second_bias[inverse]
        return moved

    def native_params(self) -> dict | None:
        """The pair as ``micronet::separable_conv`` and the whole-network runner take it, or
        None when its two convs differ in k, stride or padding. Views of the buffers (no
        copies): ``weight1`` (M, I / groups1, k), ``bias1`` (M,), ``weight2`` (O, k),
        ``bias2`` (O,), ``groups1``, ``k``, ``stride``, ``padding`` (ints) and
        ``output_index`` ((O,) long, y = result[:, output_index]) or None."""
        if not self._native_pair:
            return None
        m, per_group, k, _ = self.first_weight.shape
        return {
            "weight1": self.first_weight.view(m, per_group, k).contiguous(),
            "bias1": self.first_bias.contiguous(),
            "weight2": self.second_weight.view(-1, k).contiguous(),
            "bias2": self.second_bias.contiguous(),
            "groups1": self._first_conv[2],
            "k": k,
            "stride": self._first_conv[0][0],
            "padding": self._first_conv[1][0],
            "output_index": self.output_index,
        }

    def _native_separable(self, x: torch.Tensor) -> bool:
        """``micronet::separable_conv`` applies: float32 on the CPU, not exporting, the native
        kernels built with that op, and one k, stride and padding for both convs."""
        return (
            self._native_pair
            and not exporting()
            and x.dtype == torch.float32
            and x.device.type == "cpu"
            and kernels.native_op_available("separable_conv")
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.depthwise and exporting():
            stride, padding, groups = self._first_conv
            x = F.conv2d(x, self.first_weight, self.first_bias, stride, padding, 1, groups)
            stride, padding, groups = self._second_conv
            return F.conv2d(x, self.second_weight, self.second_bias, stride, padding, 1, groups)
        if self._native_separable(x):  # (the op takes the 4-d conv weights as they are)
            return torch.ops.micronet.separable_conv(
                x, self.first_weight, self.first_bias, self.second_weight, self.second_bias,
                self._first_conv[2], self._first_conv[0][0], self._first_conv[1][0], False,
                self.output_index,
            )  # fmt: skip
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
