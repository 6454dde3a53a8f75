"""Fake (meta) kernels of the ``micronet::`` operators.

The C++ extension defines the operators and their CPU kernels; these shape-only versions let
``torch.compile`` (``fullgraph=True``) and ``torch.export`` trace each call as one node instead
of breaking the graph. Registered once, by :mod:`.loader`, after the extension is loaded.
"""

from __future__ import annotations

import torch

__all__ = ["register_fake_kernels"]

_registered = False


def _fused_shift_max(
    x,
    fc1_weight_t,
    fc1_bias,
    fc2_weight_t,
    fc2_bias,
    low,
    high,
    shift_index,
    output_index,
    spatial_weight,
    spatial_bias,
    spatial_gamma,
    residual=None,
):
    """(N, C, H, W) -> (N, C, H, W), contiguous, x's dtype."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _separable_conv(
    x, weight1, bias1, weight2, bias2, groups1, stride, padding, relu6, output_index
):
    """(N, I, H, W) -> (N, O, H', W'), H' = (H + 2 * padding - k) // stride + 1."""
    n, _, h, w = x.shape
    k = weight1.shape[2]
    size = [(d + 2 * padding - k) // stride + 1 for d in (h, w)]
    return x.new_empty((n, weight2.shape[0], *size))


def _shift_max(x, coefficients, groups, attention):
    """(N, C, H, W) -> (N, C, H, W)."""
    return torch.empty_like(x, memory_format=torch.contiguous_format)


def _shift_max_backward(grad, x, coefficients, groups, attention):
    """Gradients of x, coefficients (N, K, J, C) and attention ((N, 1, H, W), or (0,))."""
    grad_attention = x.new_empty(0) if attention is None else torch.empty_like(attention)
    return (
        torch.empty_like(x, memory_format=torch.contiguous_format),
        torch.empty_like(coefficients, memory_format=torch.contiguous_format),
        grad_attention,
    )


def _grouped_pointwise(x, weight, bias, relu6, output_index, residual):
    """(N, I, H, W) -> (N, O, H, W), O = bias.numel()."""
    n, _, h, w = x.shape
    return x.new_empty((n, bias.numel(), h, w))


def register_fake_kernels() -> None:
    global _registered
    if _registered:
        return
    torch.library.register_fake("micronet::fused_shift_max")(_fused_shift_max)
    if hasattr(torch.ops.micronet, "separable_conv"):  # (extensions built before it lack it)
        torch.library.register_fake("micronet::separable_conv")(_separable_conv)
    if hasattr(torch.ops.micronet, "grouped_pointwise"):  # (extensions built before it lack it)
        torch.library.register_fake("micronet::grouped_pointwise")(_grouped_pointwise)
    torch.library.register_fake("micronet::shift_max")(_shift_max)
    torch.library.register_fake("micronet::shift_max_backward")(_shift_max_backward)
    _registered = True
