"""Dynamic Shift-Max through the ``micronet::`` operators, with the PyTorch fallback.

Two entry points:

* :func:`shift_max` (training and the model as built): ``shift_max(x, a, G) * attention``, a
  differentiable function that keeps only its inputs for backward (x, the coefficients, the
  attention) and recomputes the K fusions there, instead of autograd keeping every shifted map,
  product and partial max of the chain. When x is the output of a batch norm (as every
  Shift-Max of MicroNet's blocks is), it keeps the norm's input, which the norm keeps for its
  own backward anyway, instead of x, and runs the norm again in backward (bit for bit the
  same x): one map fewer per Shift-Max. Native: ``micronet::shift_max`` and
  ``micronet::shift_max_backward``; fallback: the core's :func:`~micronet_backbones.ops.
  shift_max.shift_max`, recomputed under autograd in backward (the same memory saving).
* :func:`fused_shift_max` (inference form): hyper-function, shift, fuse, max, attention and the
  following channel permutation in one native call (two passes over x).
"""

from __future__ import annotations

from typing import NamedTuple

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


class _NormSource(NamedTuple):
    """A batch norm's call, to run again in backward: ``x = batch_norm(input, weight, bias,
    running_mean, running_var, training, eps)`` (running statistics None in training, where
    the batch's own are used; copies of the module's in eval). Running it again on the same
    input gives x bit for bit: the batch statistics are a deterministic reduction."""

    input: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    running_mean: torch.Tensor | None
    running_var: torch.Tensor | None
    training: bool
    eps: float

    def tensors(self) -> tuple[torch.Tensor | None, ...]:
        return self.input, self.weight, self.bias, self.running_mean, self.running_var


def _batch_norm_source(x: torch.Tensor) -> _NormSource | None:
    """The recorded batch norm that produced ``x``, as a :class:`_NormSource`, or None.

    Read from ``x``'s autograd node when it is ATen's batch norm (``NativeBatchNormBackward0``:
    ``nn.BatchNorm2d`` on the CPU, in training or eval mode, also as a single-process
    ``SyncBatchNorm``) on a contiguous input, with a weight and a bias that are leaves
    requiring grad (found through the node's edges, as the node does not keep the bias).
    Anything else (FrozenBatchNorm2d, a frozen or absent affine, another op, a traced or
    compiled call) gives None: the caller then keeps x itself.
    """
    if torch.jit.is_scripting() or torch.jit.is_tracing() or torch.compiler.is_compiling():
        return None
    node = x.grad_fn
    if node is None or type(node).__name__ != "NativeBatchNormBackward0":
        return None
    edges = node.next_functions
    if len(edges) != 3:
        return None
    weight, bias = (getattr(edge[0], "variable", None) for edge in edges[1:])
    if weight is None or bias is None or weight.shape != (x.shape[1],):
        return None
    source = node._saved_input
    if source.shape != x.shape or source.dtype != x.dtype or not source.is_contiguous():
        return None
    training = bool(node._saved_training)
    if training:
        running_mean = running_var = None
    else:  # eval: the statistics of the forward call, copied (C values each)
        running_mean = node._saved_running_mean.detach().clone()
        running_var = node._saved_running_var.detach().clone()
    return _NormSource(
        source.detach(), weight, bias, running_mean, running_var, training, node._saved_eps
    )


def _renormalise(source: _NormSource) -> torch.Tensor:
    """The norm's output again (no running statistics are updated)."""
    with torch.no_grad():
        return torch.native_batch_norm(*source.tensors(), source.training, 0.0, source.eps)[0]


class _ShiftMax(torch.autograd.Function):
    """(x (N, C, H, W), a (N, K, J, C), groups, attention (N, 1, H, W) or None, source
    (:class:`_NormSource` or None)) -> (N, C, H, W). With a source, backward recomputes x from
    it and x itself is not kept."""

    @staticmethod
    def forward(x, coefficients, groups, attention, source):
        if _native(x):
            return torch.ops.micronet.shift_max(x, coefficients, groups, attention)
        with torch.no_grad():
            return _reference(x, coefficients, groups, attention)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, coefficients, groups, attention, source = inputs
        ctx.groups = groups
        ctx.has_attention = attention is not None
        ctx.has_source = source is not None
        if source is None:
            ctx.save_for_backward(x, coefficients, attention)
        else:  # the norm's input (kept by the norm as well) stands for x
            ctx.save_for_backward(None, coefficients, attention, *source.tensors())
            ctx.norm = source.training, source.eps

    @staticmethod
    @once_differentiable
    def backward(ctx, grad):
        x, coefficients, attention, *norm = ctx.saved_tensors
        if ctx.has_source:
            x = _renormalise(_NormSource(*norm, *ctx.norm))
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
        return grad_x, grad_a, None, grad_attention if ctx.has_attention else None, None


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

    Saved for backward: x, the coefficients and the attention; or, when x is the output of an
    ``nn.BatchNorm2d`` recorded by autograd and there is no attention (whose convolution keeps
    x anyway), the norm's input (which the norm keeps too) and its parameters instead of x, and
    the norm runs again in backward (see :func:`_batch_norm_source`).
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
    source = _batch_norm_source(x) if needs_grad and attention is None else None
    return _ShiftMax.apply(x, coefficients, groups, attention, source)


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
    residual: torch.Tensor | None = None,
) -> torch.Tensor:
    """The inference form's Dynamic Shift-Max in one native call (needs the extension).

    x (N, C, H, W) float32; ``fc1_weight_t`` (C, S), ``fc1_bias`` (S,); ``fc2_weight_t``
    (S, J*K*C) and ``fc2_bias``, ``low``, ``high`` (J*K*C,) in (j, k, channel) order (the
    hard sigmoid and rescaling folded in: ``a = clamp(relu(mean(x) @ W1 + b1) @ W2 + b2, low,
    high)``); ``shift_index`` (J - 1, C) int64, the channel each shift reads; ``output_index``
    (C,) int64, the permutation written (``out = result[:, output_index]``); ``spatial_weight``
    (1, C) and ``spatial_bias`` (1, 1) divided by the temperature, for the attention
    ``pi = min(gamma * H * W * softmax_hw(logits), 1)``; ``residual`` (N, C, H, W), added to
    the (permuted) output in the same pass. Returns (N, C, H, W).
    """
    if not native_available():
        raise RuntimeError("fused_shift_max needs the native extension (kernels.status())")
    args = (
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
    if residual is None:  # (also runs extensions built before the residual argument)
        return torch.ops.micronet.fused_shift_max(*args)
    return torch.ops.micronet.fused_shift_max(*args, residual)
