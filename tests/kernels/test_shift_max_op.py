"""kernels.shift_max (the training path) equals the core's Shift-Max, values and gradients."""

from __future__ import annotations

import pytest
import torch
from kernel_helpers import BACKENDS, use_backend
from micronet_testing import relative_error

from micronet_backbones import kernels
from micronet_backbones.ops.shift_max import shift_max as core_shift_max

# (K, J, G, spatial attention): the released shapes (K = 1 or 2, J = 2), DY-ReLU-C's attention
# (pose head) and a general K = 3, J = 3.
CASES = [(2, 2, 4, False), (1, 2, 3, False), (2, 2, 6, True), (3, 3, 2, True), (2, 1, 1, False)]


def reference(x, coefficients, groups, attention):
    out = core_shift_max(x, coefficients, groups)
    return out if attention is None else out * attention


def make_inputs(k, j, groups, spatial, dtype, seed=0, shape=(2, 12, 3, 4)):
    generator = torch.Generator().manual_seed(seed)
    n, c, h, w = shape
    x = torch.randn(n, c, h, w, generator=generator, dtype=dtype)
    a = torch.randn(n, k, j, c, generator=generator, dtype=dtype)
    pi = torch.rand(n, 1, h, w, generator=generator, dtype=dtype) if spatial else None
    return x, a, pi


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k, j, groups, spatial", CASES)
def test_gradcheck_float64(monkeypatch, backend, k, j, groups, spatial):
    use_backend(monkeypatch, backend)
    x, a, pi = make_inputs(k, j, groups, spatial, torch.float64)
    inputs = [t.requires_grad_() for t in (x, a, pi) if t is not None]

    def f(x, a, pi=None):
        return kernels.shift_max(x, a, groups, pi)

    assert torch.autograd.gradcheck(f, tuple(inputs))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k, j, groups, spatial", CASES)
def test_float32_values_and_gradients_equal_the_core(monkeypatch, backend, k, j, groups, spatial):
    use_backend(monkeypatch, backend)
    x, a, pi = make_inputs(k, j, groups, spatial, torch.float32, shape=(3, 24, 17, 19))
    grad = torch.randn(3, 24, 17, 19)
    ours = [t.clone().requires_grad_() for t in (x, a, pi) if t is not None]
    theirs = [t.clone().requires_grad_() for t in (x, a, pi) if t is not None]
    out = kernels.shift_max(ours[0], ours[1], groups, ours[2] if spatial else None)
    expected = reference(theirs[0], theirs[1], groups, theirs[2] if spatial else None)
    assert relative_error(out, expected) < 1e-6
    for mine, want in zip(
        torch.autograd.grad(out, ours, grad), torch.autograd.grad(expected, theirs, grad)
    ):
        assert relative_error(mine, want) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_ties_split_the_gradient_like_torch_maximum(monkeypatch, backend):
    """Integer inputs make the K fusions tie often: torch.maximum halves the gradient there."""
    use_backend(monkeypatch, backend)
    generator = torch.Generator().manual_seed(1)
    x = torch.randint(-2, 3, (2, 8, 4, 4), generator=generator).double()
    a = torch.randint(-1, 2, (2, 3, 2, 8), generator=generator).double()
    grad = torch.randn(2, 8, 4, 4, generator=generator, dtype=torch.float64)
    ours = [x.clone().requires_grad_(), a.clone().requires_grad_()]
    theirs = [x.clone().requires_grad_(), a.clone().requires_grad_()]
    out = kernels.shift_max(*ours, 2)
    expected = core_shift_max(*theirs, 2)
    fused = [(a[:, k, :, :, None, None] * x[:, None]).sum(1) for k in range(3)]  # rough check
    assert fused  # ties are present (the values are small integers)
    assert torch.equal(out, expected)
    for mine, want in zip(
        torch.autograd.grad(out, ours, grad), torch.autograd.grad(expected, theirs, grad)
    ):
        torch.testing.assert_close(mine, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_bfloat16_inputs_run_and_stay_close(monkeypatch, backend):
    """What autocast hands over on the CPU: bfloat16 x, coefficients in any float dtype."""
    use_backend(monkeypatch, backend)
    x, a, pi = make_inputs(2, 2, 4, True, torch.float32, shape=(2, 16, 9, 9))
    out = kernels.shift_max(x.bfloat16(), a, 4, pi)
    assert out.dtype == torch.bfloat16
    assert relative_error(out.float(), reference(x, a, 4, pi)) < 2e-2


@pytest.mark.parametrize("backend", BACKENDS)
def test_only_inputs_are_saved_for_backward(monkeypatch, backend):
    """The point of the training path: autograd keeps x, a and pi, not the chain's maps."""
    use_backend(monkeypatch, backend)
    x, a, pi = make_inputs(2, 2, 4, True, torch.float32, shape=(2, 32, 40, 40))
    x.requires_grad_()
    a.requires_grad_()
    saved = kernels.saved_tensor_bytes(lambda: kernels.shift_max(x, a, 4, pi))
    inputs = sum(t.numel() * t.element_size() for t in (x, a, pi))
    assert saved == inputs
    chain = kernels.saved_tensor_bytes(lambda: reference(x, a, 4, pi))
    assert chain >= 4 * x.numel() * x.element_size()


def test_rejects_bad_shapes():
    if not kernels.native_available():
        pytest.skip("native kernels not built")
    x = torch.randn(1, 12, 4, 4)
    with pytest.raises(RuntimeError, match="must divide C"):
        torch.ops.micronet.shift_max(x, torch.randn(1, 2, 2, 12), 5, None)
    with pytest.raises(RuntimeError, match=r"coefficients must be \(N, K, J, C\)"):
        torch.ops.micronet.shift_max(x, torch.randn(1, 2, 2, 8), 4, None)
