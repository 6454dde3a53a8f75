"""Dynamic Shift-Max through the ``micronet::`` operators, with the PyTorch fallback.

Two entry points:

* :func:`shift_max` (training and the model as built): ``shift_max(x, a, G) * attention``, a
  differentiable function that keeps only its inputs for backward (x, the coefficients, the
  attention) and recomputes the K fusions there, instead of autograd keeping every shifted map,
  product and partial max of the chain. Native: ``micronet::shift_max`` and
  ``micronet::shift_max_backward``; fallback: the core's :func:`~micronet_backbones.ops.
  shift_max.shift_max`, recomputed under autograd in backward (the same memory saving).
* :func:`fused_shift_max` (inference form): hyper-function, shift, fuse, max, attention and the
  following channel permutation in one native call (two passes over x).
"""

from __future__ import annotations

import torch
from torch.autograd.function import once_differentiable

from .loader import native_available

__all__ = ["fused_shift_max", "shift_max"]


def _reference(x, coefficients, groups, attention):
    from ..ops.shift_max import shift_max as core_shift_max  # (ops imports this module)

    out = core_shift_max(x, coefficients, groups)
    return out if attention is None else out * attention


def _native(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and native_available()


class _ShiftMax(torch.autograd.Function):
    """(x (N, C, H, W), a (N, K, J, C), groups, attention (N, 1, H, W) or None) -> (N, C, H, W)."""

    @staticmethod
    def forward(x, coefficients, groups, attention):
        if _native(x):
            return torch.ops.micronet.shift_max(x, coefficients, groups, attention)
        with torch.no_grad():
            return _reference(x, coefficients, groups, attention)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, coefficients, groups, attention = inputs
        ctx.groups = groups
        ctx.has_attention = attention is not None
        ctx.save_for_backward(x, coefficients, attention)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, coefficients, attention = ctx.saved_tensors
        if _native(x):
            grad_x, grad_a, grad_attention = torch.ops.micronet.shift_max_backward(
                grad, x, coefficients, ctx.groups, attention
            )
        else:  # recompute the reference chain, then its gradients
            inputs = [t.detach().requires_grad_() for t in (x, coefficients)]
            if ctx.has_attention:
                inputs.append(attention.detach().requires_grad_())
            with torch.enable_grad():
                out = _reference(
                    inputs[0], inputs[1], ctx.groups, inputs[2] if ctx.has_attention else None
                )
                grads = torch.autograd.grad(out, inputs, grad)
            grad_x, grad_a = grads[:2]
            grad_attention = grads[2] if ctx.has_attention else None
        return grad_x, grad_a, None, grad_attention if ctx.has_attention else None


def shift_max(
    x: torch.Tensor,
    coefficients: torch.Tensor,
    groups: int,
    attention: torch.Tensor | None = None,
) -> torch.Tensor:
    """Dynamic Shift-Max for given coefficients, memory-lean in training.

    Args:
        x: (N, C, H, W).
        coefficients: (N or 1, K, J, C), ``a[:, k, j, i]`` in the core's order.
        groups: G of the circular group shift.
        attention: optional (N, 1, H, W) factor (DY-ReLU-C's spatial attention pi).

    Returns:
        (N, C, H, W): ``max_k sum_j a[:, k, j] * group_shift(x, G, j)``, times ``attention``.
        Under autocast, coefficients and attention are cast to x's dtype (as an elementwise
        product with x would).
    """
    coefficients = coefficients.to(x.dtype).expand(x.shape[0], -1, -1, -1)
    if attention is not None:
        attention = attention.to(x.dtype)
    needs_grad = torch.is_grad_enabled() and (
        x.requires_grad
        or coefficients.requires_grad
        or (attention is not None and attention.requires_grad)
    )
    if not needs_grad and _native(x):
        return torch.ops.micronet.shift_max(x, coefficients, groups, attention)
    return _ShiftMax.apply(x, coefficients, groups, attention)


def fused_shift_max(
    x: torch.Tensor,
    fc1_weight_t: torch.Tensor,
    fc1_bias: torch.Tensor,
    fc2_weight_t: torch.Tensor,
    fc2_bias: torch.Tensor,
    low: torch.Tensor,
    high: torch.Tensor,
    shift_index: torch.Tensor,
    output_index: torch.Tensor | None = None,
    spatial_weight: torch.Tensor | None = None,
    spatial_bias: torch.Tensor | None = None,
    spatial_gamma: float = 1.0 / 3.0,
) -> torch.Tensor:
    """The inference form's Dynamic Shift-Max in one native call (needs the extension).

    x (N, C, H, W) float32; ``fc1_weight_t`` (C, S), ``fc1_bias`` (S,); ``fc2_weight_t``
    (S, J*K*C) and ``fc2_bias``, ``low``, ``high`` (J*K*C,) in (j, k, channel) order (the
    hard sigmoid and rescaling folded in: ``a = clamp(relu(mean(x) @ W1 + b1) @ W2 + b2, low,
    high)``); ``shift_index`` (J - 1, C) int64, the channel each shift reads; ``output_index``
    (C,) int64, the permutation written (``out = result[:, output_index]``); ``spatial_weight``
    (1, C) and ``spatial_bias`` (1, 1) divided by the temperature, for the attention
    ``pi = min(gamma * H * W * softmax_hw(logits), 1)``. Returns (N, C, H, W).
    """
    if not native_available():
        raise RuntimeError("fused_shift_max needs the native extension (kernels.status())")
    return torch.ops.micronet.fused_shift_max(
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
    )
