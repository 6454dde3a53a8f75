"""Dynamic Shift-Max in its cheapest exact eager formulation.

The core's :class:`~micronet_backbones.ops.DynamicShiftMax` computes, per sample,

    a = (hsigmoid(fc2(relu(fc1(avgpool(x))))) - 0.5) * 2r + init           (N, K, J, C)
    y_i = max_k sum_j a[k, j, i] * x[shift_j(i)]

Here the hyper-function is three matrix ops: the hard sigmoid, its rescaling and the offsets
fold into ``fc2`` and a clamp with per-coefficient bounds,

    a = clamp(fc2'(h), lo, hi),   fc2' = fc2 * r / 3,  bias' = bias * r / 3 + init,
    lo = init - r,  hi = init + r,

the average pool is a sum whose 1 / (H * W) rides on ``fc1``'s matrix product, and the K
fusions are computed together on a (N, K, C, H, W) tensor (one multiply and one
multiply-add per shift instead of 2K ops), the max over K writing the result directly in the
order of the channel shuffle that follows, when there is one. Shifts are one ``index_select``
each, with any index: a permutation before the Shift-Max moves into its index and weights.
"""

from __future__ import annotations

import torch
from torch import nn

from ..ops import DynamicShiftMax
from ..ops.shift_max import group_shift
from .permutation import ChannelPermutation, exporting

__all__ = ["FusedShiftMax"]


class FusedShiftMax(nn.Module):
    """(N, C, H, W) -> (N, C, H, W): a :class:`DynamicShiftMax`, optionally followed by a
    channel permutation ``output`` (applied to the result at no extra pass when possible).

    Buffers: ``fc1_weight_t`` (C, S), ``fc1_bias`` (S,), ``fc2_weight_t`` (S, K*J*C),
    ``fc2_bias``, ``low``, ``high`` (K*J*C,), ``shift_index`` (J - 1, C).
    """

    def __init__(self, module: DynamicShiftMax, output: ChannelPermutation | None = None) -> None:
        super().__init__()
        if not isinstance(module, DynamicShiftMax):
            raise TypeError(f"FusedShiftMax needs a DynamicShiftMax, got {type(module).__name__}")
        c, k, j = module.channels, module.num_fusions, module.num_shifts
        r = module.coefficient_range
        dtype = module.fc1.weight.dtype
        init = module.coefficient_init.double().expand(1, k, j, c).reshape(-1)  # (K*J*C,)
        fc2_weight = module.fc2.weight.detach().double() * (r / 3.0)
        fc2_bias = module.fc2.bias.detach().double() * (r / 3.0) + init
        channels = torch.arange(c).view(1, c, 1, 1)
        shifts = [group_shift(channels, module.groups, step).flatten() for step in range(1, j)]
        self.channels, self.num_fusions, self.num_shifts = c, k, j
        self.register_buffer("fc1_weight_t", module.fc1.weight.detach().t().contiguous())
        self.register_buffer("fc1_bias", module.fc1.bias.detach().clone())
        self.register_buffer("fc2_weight_t", fc2_weight.t().contiguous().to(dtype))
        self.register_buffer("fc2_bias", fc2_bias.to(dtype))
        self.register_buffer("low", (init - r).to(dtype))
        self.register_buffer("high", (init + r).to(dtype))
        self.register_buffer(
            "shift_index", torch.stack(shifts) if shifts else torch.zeros(0, c, dtype=torch.long)
        )
        self.output = output

    def absorb_input_permutation(self, index: torch.Tensor) -> torch.Tensor:
        """Make ``self(x[:, index]) == self'(x)[:, index]``: the hyper-function's weights and
        the shift indices are permuted instead of the activations. Returns ``index``."""
        if self.output is not None:
            raise RuntimeError("absorb input permutations before setting the output one")
        c = self.channels
        inverse = torch.empty_like(index)
        inverse[index] = torch.arange(c)
        self.fc1_weight_t = self.fc1_weight_t[inverse]
        blocks = self.num_fusions * self.num_shifts
        self.fc2_weight_t = self.fc2_weight_t.view(-1, blocks, c)[:, :, inverse].reshape(-1, blocks * c)
        for name in ("fc2_bias", "low", "high"):
            setattr(self, name, getattr(self, name).view(blocks, c)[:, inverse].reshape(-1))
        self.shift_index = index[self.shift_index[:, inverse]]
        return index

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, K, J, C, 1, 1)."""
        n, c, h, w = x.shape
        if exporting():
            pooled = x.mean((2, 3))
            hidden = torch.relu(torch.addmm(self.fc1_bias, pooled, self.fc1_weight_t))
            a = torch.addmm(self.fc2_bias, hidden, self.fc2_weight_t)
            a = torch.minimum(torch.maximum(a, self.low), self.high)
        else:
            pooled = x.reshape(n, c, h * w).sum(-1)
            hidden = torch.addmm(self.fc1_bias, pooled, self.fc1_weight_t, alpha=1.0 / (h * w))
            a = torch.addmm(self.fc2_bias, hidden.relu_(), self.fc2_weight_t)
            a = torch.clamp(a, self.low, self.high)
        return a.view(n, self.num_fusions, self.num_shifts, c, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.coefficients(x)
        k, j = self.num_fusions, self.num_shifts
        shifted = [x.index_select(1, self.shift_index[s]) for s in range(j - 1)]
        if k == 1:
            # y = a0 * x + sum_s a_s * shift_s(x); the last term writes the (permuted) result.
            fused = x * a[:, 0, 0]
            if j == 1:
                return fused if self.output is None else self.output(fused)
            for s in range(j - 2):
                fused = torch.addcmul(fused, shifted[s], a[:, 0, s + 1])
            last = (fused, shifted[-1], a[:, 0, j - 1])
            if self.output is None:
                return torch.addcmul(*last)
            return self.output.write(torch.addcmul, *last, shape=x.shape)
        # K fusions at once: (N, K, C, H, W).
        fused = x.unsqueeze(1) * a[:, :, 0]
        for s in range(j - 1):
            if exporting():
                fused = fused + shifted[s].unsqueeze(1) * a[:, :, s + 1]
            else:
                fused.addcmul_(shifted[s].unsqueeze(1), a[:, :, s + 1])
        out = fused[:, 0]
        for f in range(1, k - 1):
            out = torch.maximum(out, fused[:, f])
        if self.output is None:
            return torch.maximum(out, fused[:, k - 1])
        return self.output.write(torch.maximum, out, fused[:, k - 1], shape=x.shape)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, K={self.num_fusions}, J={self.num_shifts}"
