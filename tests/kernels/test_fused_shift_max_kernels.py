"""micronet::fused_shift_max on the one-sample ShiftMax kernels of layers.h (rows.cpp) equals
deploy.FusedShiftMax's PyTorch fallback within float32 rounding (1e-5 relative): every
Shift-Max layer of M0 and M3 (the authors' fixture weights, 224 x 224 inputs), synthetic
layers over the kernels' code paths (J, K = 1, 2, 3; short, odd and long rows; widths around
the 16-float vectors and 64-column strips of the hyper-function), the output permutation,
the residual, and DY-ReLU-C's spatial attention (the pose head's variant)."""

from __future__ import annotations

import pytest
import torch
from kernel_helpers import authors_model, random_fused_shift_max

from micronet_backbones import kernels
from micronet_backbones.deploy import FusedShiftMax, to_inference_form

RTOL = 1e-5


def require_op(residual: bool = False) -> None:
    """Skip without the native op (or, for residual tests, an extension built before it)."""
    if not kernels.native_available():
        pytest.skip(f"native kernels not built: {kernels.status().reason}")
    if not hasattr(torch.ops.micronet, "fused_shift_max"):
        pytest.skip("the native kernels have no micronet::fused_shift_max")
    schema = str(torch.ops.micronet.fused_shift_max.default._schema)
    if residual and "residual" not in schema:
        pytest.skip("micronet::fused_shift_max was built without the residual argument")


def assert_exact(actual: torch.Tensor, expected: torch.Tensor) -> None:
    assert actual.shape == expected.shape and actual.is_contiguous()
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=RTOL, atol=RTOL * scale)


def native_and_reference(fused: FusedShiftMax, x: torch.Tensor, residual=None):
    """(the native op's result, the PyTorch fallback's), through the module."""
    with torch.no_grad():
        native = fused._forward_native(x, residual)
        with kernels.pytorch_fallback():
            expected = fused(x, residual)
    return native, expected


# --- M0 and M3: every Shift-Max layer of the inference form ------------------------------------


def shift_max_layers(arch: str) -> list[tuple[FusedShiftMax, torch.Tensor]]:
    """(layer, its input) for each FusedShiftMax of ``arch``'s inference form at 224 x 224."""
    fast = to_inference_form(authors_model(arch))
    found = []

    def hook(module, inputs, output):
        found.append((module, inputs[0].clone()))

    handles = [
        m.register_forward_hook(hook) for m in fast.modules() if isinstance(m, FusedShiftMax)
    ]
    torch.manual_seed(0)
    with torch.no_grad(), kernels.pytorch_fallback():
        fast(torch.randn(1, 3, 224, 224))
    for handle in handles:
        handle.remove()
    return found


@pytest.fixture(scope="module", params=["micronet_m0", "micronet_m3"])
def model_layers(request):
    require_op()
    return request.param, shift_max_layers(request.param)


def test_model_layers(model_layers):
    arch, layers = model_layers
    assert layers, arch
    shapes = {(tuple(x.shape), m.num_fusions, m.num_shifts) for m, x in layers}
    if arch == "micronet_m3":  # the shapes the kernels were tuned on
        assert ((1, 48, 56, 56), 2, 2) in shapes and ((1, 720, 7, 7), 2, 2) in shapes
    else:
        assert any(k == 1 for _, k, _ in shapes) and any(k == 2 for _, k, _ in shapes)
    for module, x in layers:
        native, expected = native_and_reference(module, x)
        assert_exact(native, expected)


def test_model_layers_with_residual_and_batch(model_layers):
    require_op(residual=True)
    _, layers = model_layers
    generator = torch.Generator().manual_seed(1)
    for module, x in layers:
        batch = torch.cat([x, torch.randn(x.shape, generator=generator)])
        residual = torch.randn(batch.shape, generator=generator)
        native, expected = native_and_reference(module, batch, residual)
        assert_exact(native, expected)


# --- synthetic layers over the kernels' code paths ----------------------------------------------


@pytest.mark.parametrize(
    "channels, groups, k, j, squeeze, size",
    [
        (48, 12, 2, 2, 8, (56, 56)),  # M3's first Shift-Max
        (720, 60, 2, 2, 44, (7, 7)),  # M3's last
        (480, 40, 2, 2, 32, (14, 14)),
        (12, 4, 1, 2, 4, (28, 28)),  # M0's K = 1 (after a squeezing 1x1 conv)
        (384, 32, 1, 2, 24, (7, 7)),
        (8, 2, 1, 2, 4, (56, 56)),
        (20, 4, 2, 2, 52, (1, 1)),  # a 1-float row; 52 hidden units: 3 + 1 overlapping vectors
        (24, 6, 2, 2, 180, (3, 5)),  # rows shorter than the 8- and 4-float steps
        (36, 6, 2, 2, 9, (4, 4)),  # a row of exactly 16
        (40, 8, 2, 2, 5, (17, 3)),  # 51 = 3 x 16 + 3 (the blended tail)
        (33, 3, 2, 2, 7, (9, 7)),  # odd C (2 groups of 16 channels + 1), odd hw
        (18, 3, 3, 3, 6, (5, 6)),  # generic J = K = 3
        (17, 17, 2, 1, 3, (7, 9)),  # J = 1 (one group: no shift), K = 2; S < 4
        (6, 3, 1, 3, 2, (2, 3)),  # K = 1, J = 3; J * K * C = 18 coefficients (< 64)
        (2, 1, 1, 1, 1, (13, 11)),  # J = K = 1: a dynamic per-channel scale
    ],
)
@pytest.mark.parametrize("output", [None, "gather"])
def test_synthetic_layers(channels, groups, k, j, squeeze, size, output):
    require_op()
    if j > groups:
        pytest.skip("more shifts than groups")
    fused = random_fused_shift_max(channels, groups, k, j, output=output, squeeze=squeeze)
    x = torch.randn(2, channels, *size)
    native, expected = native_and_reference(fused, x)
    assert_exact(native, expected)


@pytest.mark.parametrize(
    "channels, groups, k, size",
    [
        (64, 8, 2, (64, 48)),  # the pose head's stride-4 map at 256 x 192
        (96, 8, 2, (32, 24)),
        (24, 6, 1, (7, 5)),
        (40, 8, 2, (3, 3)),  # a 9-position softmax
    ],
)
@pytest.mark.parametrize("residual", [False, True])
def test_spatial_attention(channels, groups, k, size, residual):
    require_op(residual)
    fused = random_fused_shift_max(channels, groups, k, 2, spatial=True, output="shuffle")
    x = torch.randn(2, channels, *size)
    res = torch.randn(x.shape) if residual else None
    native, expected = native_and_reference(fused, x, res)
    assert_exact(native, expected)


@pytest.mark.parametrize("output", [None, "shuffle"])
def test_residual(output):
    require_op(residual=True)
    fused = random_fused_shift_max(96, 8, 2, 2, output=output)
    x = torch.randn(3, 96, 14, 15)
    residual = torch.randn(x.shape)
    native, expected = native_and_reference(fused, x, residual)
    assert_exact(native, expected)
    # The residual is added in the output's channel order, after the permutation.
    with torch.no_grad():
        plain = fused._forward_native(x)
    assert_exact(native, plain + residual)


def test_native_params_describe_the_op():
    """native_params() holds what a runner passes to the kernels: calling the op with them
    gives the module's result."""
    require_op()
    fused = random_fused_shift_max(48, 12, 2, 2, spatial=True, output="gather")
    p = fused.native_params()
    c, s = 48, p["squeeze"]
    assert p["fc1_weight_t"].shape == (c, s) and p["fc2_weight_t"].shape == (s, 4 * c)
    assert p["shift_index"].dtype == torch.long and p["shift_index"].shape == (1, c)
    assert (p["num_shifts"], p["num_fusions"]) == (2, 2)
    assert p["spatial_weight"].shape == (c,) and isinstance(p["spatial_bias"], float)
    x = torch.randn(1, c, 9, 10)
    out = torch.ops.micronet.fused_shift_max(
        x,
        *(p[name] for name in ("fc1_weight_t", "fc1_bias", "fc2_weight_t", "fc2_bias")),
        p["low"],
        p["high"],
        p["shift_index"],
        p["output_index"],
        p["spatial_weight"].view(1, c),
        torch.tensor([[p["spatial_bias"]]]),
        p["spatial_gamma"],
    )
    _, expected = native_and_reference(fused, x)
    assert_exact(out, expected)
    plain = random_fused_shift_max(24, 4, 1, 2).native_params()
    assert plain["spatial_weight"] is None and plain["output_index"] is None


def test_bad_arguments_are_rejected():
    require_op(residual=True)
    fused = random_fused_shift_max(24, 4, 2, 2)
    x = torch.randn(1, 24, 5, 5)
    args = [
        x,
        fused.fc1_weight_t,
        fused.fc1_bias,
        fused.fc2_weight_t,
        fused.fc2_bias,
        fused.low,
        fused.high,
        fused.shift_index,
        None,
        None,
        None,
        1.0 / 3.0,
    ]
    op = torch.ops.micronet.fused_shift_max
    not_a_permutation = torch.zeros(24, dtype=torch.long)
    with pytest.raises(RuntimeError, match="output_index must be a permutation"):
        op(*args[:8], not_a_permutation, *args[9:])
    with pytest.raises(RuntimeError, match="residual must have x's shape"):
        op(*args, torch.randn(1, 24, 5, 4))
    with pytest.raises(RuntimeError, match="residual must be a float32"):
        op(*args, torch.randn(1, 24, 5, 5, dtype=torch.float64))
    bad_shift = fused.shift_index.clone()
    bad_shift[0, 3] = 24
    with pytest.raises(RuntimeError, match="shift_index holds channel 24"):
        op(*args[:7], bad_shift, *args[8:])
