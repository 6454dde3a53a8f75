"""micronet::fused_shift_max equals the inference form's PyTorch Dynamic Shift-Max."""

from __future__ import annotations

import pytest
import torch
from kernel_helpers import random_fused_shift_max, use_backend
from micronet_testing import relative_error

from micronet_backbones import kernels
from micronet_backbones.deploy import FusedShiftMax


def native_call(fused: FusedShiftMax, x: torch.Tensor) -> torch.Tensor:
    spatial = fused.spatial_attention
    return kernels.fused_shift_max(
        x,
        fused.fc1_weight_t,
        fused.fc1_bias,
        fused.fc2_weight_t,
        fused.fc2_bias,
        fused.low,
        fused.high,
        fused.shift_index,
        None if fused.output is None else fused.output.index,
        fused.spatial_weight if spatial else None,
        fused.spatial_bias if spatial else None,
        fused.spatial_gamma if spatial else 1.0 / 3.0,
    )


@pytest.mark.parametrize(
    "channels, groups, k, j, spatial, input_permuted, output, size",
    [
        (48, 12, 2, 2, False, False, None, (2, 48, 28, 28)),
        (48, 12, 2, 2, False, True, "shuffle", (1, 48, 14, 15)),
        (24, 4, 1, 2, False, True, "shuffle", (3, 24, 9, 11)),
        (24, 6, 2, 2, True, True, "gather", (2, 24, 16, 12)),
        (24, 4, 1, 2, True, False, None, (1, 24, 7, 7)),
        (18, 3, 3, 3, False, True, "gather", (2, 18, 5, 6)),
        (720, 60, 2, 2, False, False, "shuffle", (1, 720, 7, 7)),
    ],
)
def test_native_equals_pytorch(
    monkeypatch, channels, groups, k, j, spatial, input_permuted, output, size
):
    if not kernels.native_available():
        pytest.skip(f"native kernels not built: {kernels.status().reason}")
    fused = random_fused_shift_max(
        channels, groups, k, j, spatial=spatial, input_permuted=input_permuted, output=output
    )
    x = torch.randn(size)
    native = native_call(fused, x)
    use_backend(monkeypatch, "pytorch")
    with torch.no_grad():
        expected = fused(x)
    assert native.shape == expected.shape and native.is_contiguous()
    assert relative_error(native, expected) < 1e-5


def test_native_rejects_bad_input():
    if not kernels.native_available():
        pytest.skip(f"native kernels not built: {kernels.status().reason}")
    fused = random_fused_shift_max(24, 4, 2, 2)
    with pytest.raises(RuntimeError, match="x must be a float32"):
        native_call(fused, torch.randn(1, 24, 5, 5, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=r"fc1_weight_t must be \(C, S\)"):
        native_call(fused, torch.randn(1, 12, 5, 5))


def test_fallback_refuses_the_native_call(monkeypatch):
    use_backend(monkeypatch, "pytorch")
    fused = random_fused_shift_max(24, 4, 2, 2)
    with pytest.raises(RuntimeError, match="needs the native extension"):
        native_call(fused, torch.randn(1, 24, 5, 5))
