"""Dynamic Shift-Max (MicroNet, Li et al., ICCV 2021, Section 4).

For an input x with C channels split into G groups, Dynamic Shift-Max computes

    y_i = max_{1<=k<=K}  sum_{j=0}^{J-1}  a^k_{i,j}(x) * x^{(j)}_i                (paper Eq. 5)

where x^{(j)} is the j-th circular group shift of x (x^{(0)} = x) and the K*J*C coefficients
a^k_{i,j}(x) come from a hyper-function: global average pooling, two fully connected layers with a
ReLU between, and a hard sigmoid, rescaled to ``init + [-coefficient_range, coefficient_range]``.

* J = 1 gives Dynamic ReLU (max over K input-dependent linear functions of x_i itself);
  J = 1, K = 2 with coefficients (1, 0) is the plain ReLU.
* K = 1 fuses the J shifts linearly (no max); the released MicroNets use it after the
  squeezing pointwise convolutions.

Group shift, as in the authors' released code: with channels viewed as a (G, C/G) matrix,
shift ``j`` rolls *both* axes by ``j``, so ``x^{(j)}[(g, m)] = x[((g + j) mod G, (m + j) mod C/G)]``
(one step moves every channel to the next group and the next position within it).

:meth:`DynamicShiftMax.forward` runs the Shift-Max through :func:`micronet_backbones.kernels.
shift_max`: one differentiable function that keeps only x (or, right after a BatchNorm, the
norm's input, which the norm keeps anyway, and reruns the norm), the coefficients (and the
attention) for backward and recomputes the K fusions there, instead of autograd keeping every
shifted map, product and partial max (native C++ when built, else PyTorch ops). Traced and exported graphs
use :func:`shift_max` (standard ops).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels

__all__ = [
    "DynamicShiftMax",
    "add_spatial_attention",
    "FoldedHyperFunction",
    "StaticShiftMax",
    "group_shift",
    "make_divisible",
    "shift_max",
    "spatial_attention",
]


def make_divisible(value: float, divisor: int, min_value: int | None = None) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``), never
    going down by more than 10% (the MobileNet rounding rule the authors use)."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


def group_shift(x: torch.Tensor, groups: int, steps: int = 1) -> torch.Tensor:
    """Circular group shift ``x^{(steps)}``: (N, C, H, W) -> (N, C, H, W).

    Channels are viewed as (groups, C / groups); output channel (g, m) is input channel
    ((g + steps) mod groups, (m + steps) mod (C / groups)). Implemented as one ``torch.roll``
    on a grouped view (no per-call index tensor).
    """
    n, c, h, w = x.shape
    grouped = x.reshape(n, groups, c // groups, h, w)
    return torch.roll(grouped, shifts=(-steps, -steps), dims=(1, 2)).reshape(n, c, h, w)


def shift_max(x: torch.Tensor, coefficients: torch.Tensor, groups: int) -> torch.Tensor:
    """The Shift-Max of Eq. 5 for given coefficients.

    Args:
        x: (N, C, H, W).
        coefficients: (N or 1, K, J, C): ``coefficients[:, k, j, i] = a^k_{i,j}``.
        groups: G, the number of channel groups of the shift.

    Returns:
        (N, C, H, W): ``max_k sum_j coefficients[:, k, j, :] * group_shift(x, groups, j)``.
    """
    num_fusions, num_shifts = coefficients.shape[1], coefficients.shape[2]
    coefficients = coefficients[..., None, None]
    shifted = [x] + [group_shift(x, groups, j) for j in range(1, num_shifts)]
    out = None
    for k in range(num_fusions):
        fused = shifted[0] * coefficients[:, k, 0]
        for j in range(1, num_shifts):
            fused = fused + shifted[j] * coefficients[:, k, j]
        out = fused if out is None else torch.maximum(out, fused)
    return out


def spatial_attention(logits: torch.Tensor, gamma: float, size: tuple[int, int]) -> torch.Tensor:
    """DY-ReLU-C's spatial attention from its logits (already divided by the temperature).

    ``logits``: (N, H * W) or (N, 1, H * W); ``gamma``: the attention's value where it is
    uniform (``spatial_gamma``); ``size``: (H, W) as ints. Returns
    pi = min(gamma * H * W * softmax_hw(logits), 1), (N, 1, H, W).
    """
    h, w = size
    pi = torch.softmax(logits, dim=-1) * (gamma * h * w)
    return pi.clamp(max=1.0).view(-1, 1, h, w)


class FoldedHyperFunction(NamedTuple):
    """Dynamic Shift-Max's hyper-function as two affine maps, a ReLU and a clamp (float64):

    ``hidden = relu(mean_hw(x) @ fc1_weight.T + fc1_bias)``, (N, S);
    ``a = clamp(einsum("kjcs,ns->nkjc", weight, hidden) + bias, low, high)``, (N, K, J, C),
    equal to :meth:`DynamicShiftMax.coefficients`. Shapes: ``fc1_weight`` (S, C), ``fc1_bias``
    (S,), ``weight`` (K, J, C, S), ``bias``, ``low``, ``high`` (K, J, C).
    """

    fc1_weight: torch.Tensor
    fc1_bias: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor


def _init_table(init: Sequence[Sequence[float]] | None, num_fusions: int, num_shifts: int):
    """K x J table of coefficient offsets; the default (1 for j = 0, else 0) is the identity."""
    if init is None:
        return [[1.0] + [0.0] * (num_shifts - 1) for _ in range(num_fusions)]
    table = [[float(v) for v in row] for row in init]
    if len(table) != num_fusions or any(len(row) != num_shifts for row in table):
        raise ValueError(f"init must be a {num_fusions} x {num_shifts} table (K x J), got {init!r}")
    return table


def _check_input(module: nn.Module, x: torch.Tensor) -> None:
    if torch.jit.is_tracing():  # shapes are traced values; the trace is of a valid input
        return
    if x.dim() != 4 or x.shape[1] != module.channels:
        raise ValueError(
            f"{type(module).__name__} expects input of shape (N, {module.channels}, H, W), "
            f"got {tuple(x.shape)}"
        )


class DynamicShiftMax(nn.Module):
    """Dynamic Shift-Max activation (Eq. 5) with input-dependent coefficients.

    (N, C, H, W) -> (N, C, H, W), for any ``channels`` C divisible by ``groups`` G.

    Hyper-function (coefficients for every sample):
    ``adaptive_avg_pool2d -> fc1 (C -> S) -> ReLU -> fc2 (S -> K*J*C) -> hard sigmoid``, then
    ``a = (hsigmoid - 0.5) * 2 * coefficient_range + init``, with ``fc2``'s outputs ordered
    (k, j, channel). ``S = squeeze_channels`` or ``max(4, make_divisible(C // reduction, 4))``.
    ``fc1``/``fc2`` are ``nn.Linear`` with bias; there is no BatchNorm in this module.

    Args:
        channels: C.
        groups: G, number of channel groups for the circular shift (C / G channels each).
        num_shifts: J (J = 1: Dynamic ReLU).
        num_fusions: K.
        reduction: squeeze ratio of the hyper-function.
        init: K x J table of coefficient offsets (default: 1 for j = 0, else 0).
        coefficient_range: half-width of the learnt coefficient range around ``init``
            (the authors' ``ACT_MAX``; 2.0 in all released models).
        squeeze_channels: overrides S.
        spatial_attention: also modulate the coefficients per position with the spatial
            attention of Dynamic ReLU's DY-ReLU-C (Chen et al., ECCV 2020), for dense heads:
            ``pi = min(gamma * softmax_hw(spatial(x) / temperature), 1)`` with ``spatial`` a
            1x1 conv C -> 1 (with bias) and ``gamma = spatial_gamma * H * W``, and
            coefficients ``a^k_{i,j}(x) * pi_hw(x)`` at position (h, w). As pi >= 0 it factors
            out of the max, so the output is ``pi * ShiftMax(x)``, (N, 1, H, W) times
            (N, C, H, W). Default False: the module, its parameters and its output are then
            exactly those of the released models.
        spatial_temperature: the softmax temperature tau (DY-ReLU-C: 10).
        spatial_gamma: gamma / (H * W) (DY-ReLU-C: 1 / 3, so pi starts at 1 / 3 everywhere).
    """

    def __init__(
        self,
        channels: int,
        groups: int = 1,
        *,
        num_shifts: int = 2,
        num_fusions: int = 2,
        reduction: int = 4,
        init: Sequence[Sequence[float]] | None = None,
        coefficient_range: float = 2.0,
        squeeze_channels: int | None = None,
        spatial_attention: bool = False,
        spatial_temperature: float = 10.0,
        spatial_gamma: float = 1.0 / 3.0,
    ) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"groups={groups} must divide channels={channels}")
        if num_shifts < 1 or num_fusions < 1:
            raise ValueError("num_shifts (J) and num_fusions (K) must be >= 1")
        if spatial_temperature <= 0 or spatial_gamma <= 0:
            raise ValueError(
                f"spatial_temperature and spatial_gamma must be > 0, got {spatial_temperature} "
                f"and {spatial_gamma}"
            )
        self.channels = channels
        self.groups = groups
        self.num_shifts = num_shifts
        self.num_fusions = num_fusions
        # fc2's K * J * C outputs, viewed as the coefficients a^k_{i,j} (the one place that
        # fixes their order).
        self.coefficient_shape = (num_fusions, num_shifts, channels)
        self.coefficient_range = float(coefficient_range)
        if squeeze_channels is None:
            squeeze_channels = max(4, make_divisible(channels // reduction, 4))
        self.fc1 = nn.Linear(channels, squeeze_channels)
        self.fc2 = nn.Linear(squeeze_channels, num_fusions * num_shifts * channels)
        table = _init_table(init, num_fusions, num_shifts)
        self.register_buffer(
            "coefficient_init",
            torch.tensor(table).view(1, num_fusions, num_shifts, 1),
            persistent=False,
        )
        self.spatial_temperature = float(spatial_temperature)
        self.spatial_gamma = float(spatial_gamma)
        self.spatial = nn.Conv2d(channels, 1, 1) if spatial_attention else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The authors' init: N(0, 0.01) weights and zero bias, so a starts near ``init``
        (and the spatial attention, if any, near its uniform value ``spatial_gamma``)."""
        layers = (self.fc1, self.fc2) + ((self.spatial,) if self.spatial is not None else ())
        for layer in layers:
            nn.init.normal_(layer.weight, 0.0, 0.01)
            nn.init.zeros_(layer.bias)

    def with_spatial_attention(
        self, temperature: float = 10.0, gamma: float = 1.0 / 3.0
    ) -> DynamicShiftMax:
        """A new DynamicShiftMax with this one's settings (channels, groups, J, K, coefficient
        offsets and range, squeeze width) and DY-ReLU-C's spatial attention (``temperature``,
        ``gamma``: see the class), freshly initialised: e.g. for a dense head made of core
        Micro-Blocks, as the paper's pose head is."""
        k, j, _ = self.coefficient_shape
        return DynamicShiftMax(
            self.channels,
            self.groups,
            num_shifts=j,
            num_fusions=k,
            init=self.coefficient_init.view(k, j).tolist(),
            coefficient_range=self.coefficient_range,
            squeeze_channels=self.fc1.out_features,
            spatial_attention=True,
            spatial_temperature=temperature,
            spatial_gamma=gamma,
        )

    def spatial_weights(self, x: torch.Tensor) -> torch.Tensor:
        """DY-ReLU-C's spatial attention: (N, C, H, W) -> pi (N, 1, H, W), 0 < pi <= 1."""
        if self.spatial is None:
            raise ValueError("this DynamicShiftMax was built without spatial_attention")
        n, _, h, w = x.shape
        logits = self.spatial(x).view(n, h * w) / self.spatial_temperature
        return spatial_attention(logits, self.spatial_gamma, (h, w))

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """The hyper-function: (N, C, H, W) -> coefficients (N, K, J, C)."""
        n = x.shape[0]
        pooled = F.adaptive_avg_pool2d(x, 1).view(n, self.channels)
        hidden = F.relu(self.fc1(pooled))
        gate = F.relu6(self.fc2(hidden) + 3.0) * (1.0 / 6.0)
        scaled = (gate - 0.5) * (2.0 * self.coefficient_range)
        scaled = scaled.view(n, *self.coefficient_shape)
        return scaled + self.coefficient_init

    def folded_hyper_function(self) -> FoldedHyperFunction:
        """:meth:`coefficients` as affine maps and a clamp, in float64 (detached), for an
        inference form that must not depend on ``fc2``'s row order.

        The hard sigmoid is ``clamp(z / 6 + 1 / 2, 0, 1)``, so its rescaling and the offsets
        fold into ``fc2``: ``a = (hsigmoid(z) - 1 / 2) * 2r + init
        = clamp(z * r / 3 + init, init - r, init + r)`` with ``r = coefficient_range``.
        """
        shape, r = self.coefficient_shape, self.coefficient_range
        init = self.coefficient_init.detach().double().expand(1, *shape)[0]  # (K, J, C)
        return FoldedHyperFunction(
            fc1_weight=self.fc1.weight.detach().double(),
            fc1_bias=self.fc1.bias.detach().double(),
            weight=self.fc2.weight.detach().double().view(*shape, -1) * (r / 3.0),
            bias=self.fc2.bias.detach().double().view(shape) * (r / 3.0) + init,
            low=init - r,
            high=init + r,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x)
        attention = self.spatial_weights(x) if self.spatial is not None else None
        if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
            out = shift_max(x, self.coefficients(x), self.groups)  # standard ops for exporters
            return out if attention is None else out * attention
        # One function keeping only x, a and pi for backward (native kernels when built)
        return kernels.shift_max(x, self.coefficients(x), self.groups, attention)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, groups={self.groups}, J={self.num_shifts}, "
            f"K={self.num_fusions}, coefficient_range={self.coefficient_range}"
            + (", spatial_attention=True" if self.spatial is not None else "")
        )


def add_spatial_attention(
    module: nn.Module, temperature: float = 10.0, gamma: float = 1.0 / 3.0
) -> nn.Module:
    """Give every :class:`DynamicShiftMax` inside ``module`` that has none DY-ReLU-C's spatial
    attention: each is replaced, in place, by its :meth:`~DynamicShiftMax.with_spatial_attention`
    (same settings, fresh weights). Returns ``module``."""
    for name, layer in list(module.named_modules()):
        if isinstance(layer, DynamicShiftMax) and layer.spatial is None:
            parent, _, child = name.rpartition(".")
            spatial = layer.with_spatial_attention(temperature, gamma)
            setattr(module.get_submodule(parent), child, spatial)
    return module


class StaticShiftMax(nn.Module):
    """Shift-Max (Eq. 5) with static, learnable coefficients: the same a^k_{i,j} for every input.

    (N, C, H, W) -> (N, C, H, W). ``coefficients`` is an ``nn.Parameter`` of shape (K, J, C),
    initialised from the K x J ``init`` table (default: 1 for j = 0, else 0).
    """

    def __init__(
        self,
        channels: int,
        groups: int = 1,
        *,
        num_shifts: int = 2,
        num_fusions: int = 2,
        init: Sequence[Sequence[float]] | None = None,
    ) -> None:
        super().__init__()
        if channels % groups:
            raise ValueError(f"groups={groups} must divide channels={channels}")
        self.channels = channels
        self.groups = groups
        table = torch.tensor(_init_table(init, num_fusions, num_shifts))
        self.coefficients = nn.Parameter(table[:, :, None].repeat(1, 1, channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x)
        return shift_max(x, self.coefficients[None], self.groups)

    def extra_repr(self) -> str:
        k, j, _ = self.coefficients.shape
        return f"channels={self.channels}, groups={self.groups}, J={j}, K={k}"
