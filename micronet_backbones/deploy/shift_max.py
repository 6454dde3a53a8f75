"""Dynamic Shift-Max in its cheapest exact eager formulation.

The core's :class:`~micronet_backbones.ops.DynamicShiftMax` computes, per sample,

    a = (hsigmoid(fc2(relu(fc1(avgpool(x))))) - 0.5) * 2r + init           (N, K, J, C)
    y_i = max_k sum_j a[k, j, i] * x[shift_j(i)]

Here the hyper-function is three matrix ops: the hard sigmoid, its rescaling and the offsets
fold into ``fc2`` and a clamp with per-coefficient bounds (the core's
:meth:`~micronet_backbones.ops.DynamicShiftMax.folded_hyper_function`, whose (K, J, C) axes
are named by its shape, so nothing here depends on ``fc2``'s row order),

    a = clamp(fc2'(h), lo, hi),   fc2' = fc2 * r / 3,  bias' = bias * r / 3 + init,
    lo = init - r,  hi = init + r,

(stored in (j, k, channel) order, so one ``unbind`` gives each shift's K coefficient vectors),
and the K fusions are computed together on a (N, K, C, H, W) tensor (one multiply and one
multiply-add per shift instead of 2K ops), the max over K writing the result directly in the
order of the channel shuffle that follows, when there is one. Shifts are one ``index_select``
each (indices from the core's ``group_shift``), with any index: a permutation before the
Shift-Max moves into its index and weights. The hyper-function is one code path for eager
PyTorch and export (only the pooling op differs); the fusions are not: exported graphs compute
the K fusions one by one, which onnxruntime runs faster than slices of a stacked tensor, while
eager PyTorch runs the stacked form in fewer ops. When the native kernels are built
(:mod:`micronet_backbones.kernels`), eager float32 CPU calls (and ``torch.compile``, which sees
one op) run all of it as one ``micronet::fused_shift_max``: two passes over x.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels
from ..ops import DynamicShiftMax
from ..ops.shift_max import group_shift, spatial_attention
from .permutation import ChannelPermutation, exporting, fixed_shape, inverse_permutation

__all__ = ["FusedShiftMax"]

# The hyper-function's buffers, in micronet::fused_shift_max's argument order.
_HYPER_BUFFERS = ("fc1_weight_t", "fc1_bias", "fc2_weight_t", "fc2_bias", "low", "high")


class FusedShiftMax(nn.Module):
    """(N, C, H, W) -> (N, C, H, W): a :class:`DynamicShiftMax`, optionally followed by a
    channel permutation ``output`` (applied to the result at no extra pass when possible).

    With the core's optional spatial attention (DY-ReLU-C), the result is multiplied by
    ``pi = min(gamma * H * W * softmax_hw(spatial(x) / tau), 1)``, (N, 1, H, W); that product
    then writes the permuted output.

    Buffers: ``fc1_weight_t`` (C, S), ``fc1_bias`` (S,), ``fc2_weight_t`` (S, J*K*C),
    ``fc2_bias``, ``low``, ``high`` (J*K*C,), all in (j, k, channel) order,
    ``shift_index`` (J - 1, C); with spatial
    attention ``spatial_weight`` (1, C) and ``spatial_bias`` (1, 1), both divided by tau.
    """

    def __init__(self, module: DynamicShiftMax, output: ChannelPermutation | None = None) -> None:
        super().__init__()
        if not isinstance(module, DynamicShiftMax):
            raise TypeError(f"FusedShiftMax needs a DynamicShiftMax, got {type(module).__name__}")
        k, j, c = module.coefficient_shape
        folded = module.folded_hyper_function()  # float64, coefficient axes (K, J, C)
        dtype = module.fc1.weight.dtype

        def shift_major(t: torch.Tensor) -> torch.Tensor:
            """(K, J, C, ...) -> (J * K * C, ...): ours are in (j, k, channel) order."""
            return t.transpose(0, 1).reshape(j * k * c, *t.shape[3:]).to(dtype)

        channels = torch.arange(c).view(1, c, 1, 1)
        shifts = [group_shift(channels, module.groups, step).flatten() for step in range(1, j)]
        self.channels, self.num_fusions, self.num_shifts = c, k, j
        self.register_buffer("fc1_weight_t", folded.fc1_weight.t().contiguous().to(dtype))
        self.register_buffer("fc1_bias", folded.fc1_bias.to(dtype))
        self.register_buffer("fc2_weight_t", shift_major(folded.weight).t().contiguous())
        self.register_buffer("fc2_bias", shift_major(folded.bias))
        self.register_buffer("low", shift_major(folded.low))
        self.register_buffer("high", shift_major(folded.high))
        self.register_buffer(
            "shift_index", torch.stack(shifts) if shifts else torch.zeros(0, c, dtype=torch.long)
        )
        spatial = getattr(module, "spatial", None)
        self.spatial_attention = spatial is not None
        if self.spatial_attention:
            tau = module.spatial_temperature
            self.spatial_gamma = module.spatial_gamma
            weight = spatial.weight.detach().double().view(1, c) / tau
            bias = spatial.bias.detach().double().view(1, 1) / tau
            self.register_buffer("spatial_weight", weight.to(dtype))
            self.register_buffer("spatial_bias", bias.to(dtype))
        self.output = output

    def absorb_input_permutation(self, index: torch.Tensor) -> torch.Tensor:
        """Make ``self(x[:, index]) == self'(x)[:, index]``: the hyper-function's weights and
        the shift indices are permuted instead of the activations. Returns ``index``."""
        if self.output is not None:
            raise RuntimeError("absorb input permutations before setting the output one")
        c = self.channels
        inverse = inverse_permutation(index)
        self.fc1_weight_t = self.fc1_weight_t[inverse]
        blocks = self.num_fusions * self.num_shifts
        self.fc2_weight_t = self.fc2_weight_t.view(-1, blocks, c)[:, :, inverse].reshape(
            -1, blocks * c
        )
        for name in ("fc2_bias", "low", "high"):
            setattr(self, name, getattr(self, name).view(blocks, c)[:, inverse].reshape(-1))
        self.shift_index = index[self.shift_index[:, inverse]]
        if self.spatial_attention:
            self.spatial_weight = self.spatial_weight[:, inverse]
        return index

    def spatial_weights(self, x: torch.Tensor) -> torch.Tensor:
        """DY-ReLU-C's spatial attention pi: (N, C, H, W) -> (N, 1, H, W)."""
        _, c, h, w = fixed_shape(x)
        logits = torch.matmul(self.spatial_weight, x.reshape(-1, c, h * w)) + self.spatial_bias
        return spatial_attention(logits, self.spatial_gamma, (h, w))

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, J, K, C, 1, 1)."""
        _, c, h, w = fixed_shape(x)
        # The one runtime difference: onnxruntime has GlobalAveragePool, eager a cheaper mean.
        pooled = F.adaptive_avg_pool2d(x, 1).view(-1, c) if exporting() else x.mean((2, 3))
        hidden = torch.relu(torch.addmm(self.fc1_bias, pooled, self.fc1_weight_t))
        a = torch.clamp(torch.addmm(self.fc2_bias, hidden, self.fc2_weight_t), self.low, self.high)
        return a.view(-1, self.num_shifts, self.num_fusions, c, 1, 1)

    def native_params(self) -> dict:
        """What a native runner needs (float32 contiguous tensors, as ``micronet::
        fused_shift_max`` reads them): ``fc1_weight_t`` (C, S), ``fc1_bias`` (S,),
        ``fc2_weight_t`` (S, J*K*C), ``fc2_bias``, ``low``, ``high`` (J*K*C,), ``shift_index``
        (J - 1, C) int64, ``spatial_weight`` (C,) or None, ``spatial_bias`` and
        ``spatial_gamma`` floats (0 and 1/3 without attention), ``num_shifts`` J,
        ``num_fusions`` K, ``squeeze`` S, and ``output_index`` (C,) int64 or None (``out[:, o] =
        result[:, output_index[o]]``)."""
        spatial = self.spatial_attention
        return {
            **{name: getattr(self, name).contiguous() for name in _HYPER_BUFFERS},
            "shift_index": self.shift_index.to(torch.long).contiguous(),
            "spatial_weight": self.spatial_weight.reshape(-1).contiguous() if spatial else None,
            "spatial_bias": float(self.spatial_bias) if spatial else 0.0,
            "spatial_gamma": float(self.spatial_gamma) if spatial else 1.0 / 3.0,
            "num_shifts": self.num_shifts,
            "num_fusions": self.num_fusions,
            "squeeze": self.fc1_bias.numel(),
            "output_index": None if self.output is None else self.output.index.contiguous(),
        }

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``residual`` (optional, x's shape, in the output's channel order) is added to the
        result: the last layer of a residual block, in the same pass when native."""
        if exporting():
            out = self._forward_export(x)
        elif self._native(x, residual):
            return self._forward_native(x, residual)
        else:
            out = self._forward_pytorch(x)
        return out if residual is None else out + residual

    def _native(self, x: torch.Tensor, residual: torch.Tensor | None) -> bool:
        """``micronet::fused_shift_max`` applies: float32 on the CPU, nothing for autograd to
        track (the op has no backward), the native kernels built."""
        if x.dtype != torch.float32 or x.device.type != "cpu":
            return False
        if torch.is_grad_enabled() and (
            x.requires_grad or (residual is not None and residual.requires_grad)
        ):
            return False
        return kernels.native_available()

    def _forward_pytorch(self, x: torch.Tensor) -> torch.Tensor:
        terms = self.coefficients(x).unbind(1)  # per shift j: (N, K, C, 1, 1)
        shifted = [x.index_select(1, index) for index in self.shift_index]
        # The last op (op, *operands) is run by _finish, which also writes the permutation.
        if self.num_fusions == 1:
            terms = [t.squeeze(1) for t in terms]  # (N, C, 1, 1)
            fused = x * terms[0]
            if not shifted:
                return self._finish(None, fused, x)
            for t, s in zip(terms[1:-1], shifted[:-1]):
                fused.addcmul_(s, t)
            return self._finish(torch.addcmul, (fused, shifted[-1], terms[-1]), x)
        fused = torch.mul(x.unsqueeze(1), terms[0])  # (N, K, C, H, W)
        for t, s in zip(terms[1:], shifted):
            fused.addcmul_(s.unsqueeze(1), t)
        fusions = fused.unbind(1)
        out = fusions[0]
        for f in fusions[1:-1]:
            out = torch.maximum(out, f)
        return self._finish(torch.maximum, (out, fusions[-1]), x)

    def _forward_native(
        self, x: torch.Tensor, residual: torch.Tensor | None = None
    ) -> torch.Tensor:
        """All of it (hyper-function, shifts, fusions, max, attention, output permutation, the
        residual) in one ``micronet::fused_shift_max`` call: two passes over x. The buffers
        are read from ``_buffers`` directly (nn.Module's attribute lookup for each costs
        ~0.5 us, together as much as the op itself on a small map)."""
        buffers, output = self._buffers, self.output
        spatial = self.spatial_attention
        return kernels.fused_shift_max(
            x,
            buffers["fc1_weight_t"],
            buffers["fc1_bias"],
            buffers["fc2_weight_t"],
            buffers["fc2_bias"],
            buffers["low"],
            buffers["high"],
            buffers["shift_index"],
            None if output is None else output._buffers["index"],
            buffers["spatial_weight"] if spatial else None,
            buffers["spatial_bias"] if spatial else None,
            self.spatial_gamma if spatial else 1.0 / 3.0,
            residual,
        )

    def _forward_export(self, x: torch.Tensor) -> torch.Tensor:
        """Functional ops only; each fusion on its own (fewer, cheaper onnxruntime nodes than
        slicing a stacked tensor), the J*K coefficient vectors from one Split."""
        k, j, c = self.num_fusions, self.num_shifts, self.channels
        a = self.coefficients(x).reshape(-1, j * k * c, 1, 1).split(c, dim=1)  # (j, k) order
        shifted = [x.index_select(1, self.shift_index[s]) for s in range(j - 1)]
        out = None
        for f in range(k):
            fused = x * a[f]
            for s in range(1, j):
                fused = fused + shifted[s - 1] * a[s * k + f]
            out = fused if out is None else torch.maximum(out, fused)
        return self._finish(None, out, x)

    def _finish(self, op, operands, x: torch.Tensor) -> torch.Tensor:
        """Run the last op (``operands`` alone when ``op`` is None), times the spatial
        attention if any, written in the order of the output permutation."""
        if self.spatial_attention:
            result = operands if op is None else op(*operands)
            op, operands = torch.mul, (result, self.spatial_weights(x))
        if op is None:
            return operands if self.output is None else self.output(operands)
        if self.output is None:
            return op(*operands)
        return self.output.write(op, *operands, shape=x.shape)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, K={self.num_fusions}, J={self.num_shifts}"
