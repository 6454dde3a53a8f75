"""The training path: what create_model(...) gives in training mode keeps less for backward,
with the same gradients, also under CPU bfloat16 autocast."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from kernel_helpers import BACKENDS, authors_model, use_backend
from micronet_testing import relative_error
from torch import nn

import micronet_backbones as mb
from micronet_backbones import kernels
from micronet_backbones.kernels.benchmark import autograd_chain_shift_max
from micronet_backbones.ops.shift_max import shift_max as core_shift_max


def gradients(model, x, target):
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the classifier's dropout
    out = model(x)
    loss = (
        F.cross_entropy(out, target)
        if isinstance(out, torch.Tensor)
        else sum((f * f).mean() for f in out)
    )
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten().double() for p in model.parameters()])


def test_training_mode_takes_the_lean_path_without_a_flag():
    model = mb.create_model("micronet_m0").train()
    out = model(torch.randn(2, 3, 64, 64))
    nodes, stack = set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        if node is not None and node not in nodes:
            nodes.add(node)
            stack.extend(next_node for next_node, _ in node.next_functions)
    names = {type(node).__name__ for node in nodes}
    assert "_ShiftMaxBackward" in names
    assert "MaximumBackward0" not in names  # no op chain of the Shift-Max in the graph


@pytest.mark.parametrize(
    "backend, arch, features_only",
    [("native", "m0", True), ("pytorch", "m0", True), ("native", "m3", False)],
)
def test_gradients_equal_the_op_chain(monkeypatch, backend, arch, features_only):
    """Float32 gradients of all parameters as the op chain gives them (float32 rounding: both
    are as close to the float64 gradients)."""
    use_backend(monkeypatch, backend)
    model = authors_model(arch, features_only=features_only).train()
    x, target = torch.randn(2, 3, 64, 96), torch.tensor([3, 7])
    loss, lean = gradients(model, x, target)
    with autograd_chain_shift_max():
        chain_loss, chain = gradients(model, x, target)
        exact_loss, exact = gradients(model.double(), x.double(), target)
    assert relative_error(loss, chain_loss) < 1e-6
    assert relative_error(lean, chain) < 1e-5
    assert (lean - exact).norm() <= 1.1 * (chain - exact).norm() + 1e-7 * exact.norm()


@pytest.mark.parametrize("backend", BACKENDS)
def test_saved_for_backward_memory_is_lower(monkeypatch, backend):
    """Distinct storages autograd keeps for one training forward of the M3 backbone.

    Measured at 2 x 3 x 800 x 1216 (tools/benchmark.py): 792 MiB instead of 1173 MiB, 32.4%
    less (the issue's target: 25%). Every Shift-Max follows a BatchNorm and keeps the norm's
    input (which the norm keeps anyway) instead of its own; what is left is the convolutions'
    and BatchNorms' inputs and the ReLU6s' outputs. Here at a smaller size (30.9%)."""
    use_backend(monkeypatch, backend)
    model = mb.create_model("micronet_m3", features_only=True).train()
    x = torch.randn(2, 3, 192, 256)
    lean = kernels.saved_tensor_bytes(lambda: model(x))
    with autograd_chain_shift_max():
        chain = kernels.saved_tensor_bytes(lambda: model(x))
    assert 1 - lean / chain >= 0.25


def _saved_storages(forward):
    """data_ptr of every storage autograd saves while ``forward()`` runs, and its result."""
    saved = set()

    def pack(tensor):
        saved.add(tensor.untyped_storage().data_ptr())
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = forward()
    return saved, result


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("training", [True, False], ids=["bn-train", "bn-eval"])
def test_after_batchnorm_keeps_the_norm_input_float64(monkeypatch, backend, training):
    """conv -> BatchNorm2d -> Shift-Max: the Shift-Max keeps the norm's input, not its own
    (recomputed by running the norm again in backward); float64 gradients are those of the
    op chain and pass gradcheck."""
    use_backend(monkeypatch, backend)
    torch.manual_seed(0)
    norm = nn.BatchNorm2d(6).double().train(training)
    with torch.no_grad():
        norm.running_mean.uniform_(-1.0, 1.0)
        norm.running_var.uniform_(0.5, 2.0)
    stats = (None, None) if training else (norm.running_mean, norm.running_var)
    leaves = [
        torch.randn(2, 2, 3, 4, dtype=torch.float64),  # x
        torch.randn(2, 2, 2, 6, dtype=torch.float64),  # coefficients
        torch.randn(6, 2, 1, 1, dtype=torch.float64),  # conv weight
        torch.rand(6, dtype=torch.float64) + 0.5,  # norm weight
        torch.rand(6, dtype=torch.float64) - 0.5,  # norm bias
    ]
    leaves = [t.requires_grad_() for t in leaves]
    maps = {}

    def forward(x, a, conv_weight, weight, bias, shift_max=kernels.shift_max):
        maps["input"] = F.conv2d(x, conv_weight)
        maps["normed"] = F.batch_norm(maps["input"], *stats, weight, bias, training, 0.0, 1e-5)
        return shift_max(maps["normed"], a, 3)

    saved, out = _saved_storages(lambda: forward(*leaves))
    assert maps["input"].untyped_storage().data_ptr() in saved
    assert maps["normed"].untyped_storage().data_ptr() not in saved
    grad = torch.randn_like(out)
    lean = torch.autograd.grad(out, leaves, grad)
    chain = torch.autograd.grad(forward(*leaves, shift_max=core_shift_max), leaves, grad)
    for got, want in zip(lean, chain):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(forward, leaves, eps=1e-6, atol=1e-7, rtol=1e-5)


def _frozen_batchnorm(module):
    """Every BatchNorm2d replaced by torchvision's FrozenBatchNorm2d with its statistics."""
    from torchvision.ops.misc import FrozenBatchNorm2d

    for name, child in module.named_children():
        if isinstance(child, torch.nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            for key in ("weight", "bias", "running_mean", "running_var"):
                getattr(frozen, key).copy_(getattr(child, key).detach())
            setattr(module, name, frozen)
        else:
            _frozen_batchnorm(child)
    return module


def _eval_batchnorm(module):
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.eval()
    return module


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "convert",
    [nn.SyncBatchNorm.convert_sync_batchnorm, _frozen_batchnorm, _eval_batchnorm],
    ids=["sync", "frozen", "bn-eval"],
)
def test_converted_norms_train_like_the_op_chain(monkeypatch, backend, convert):
    """SyncBatchNorm (one process), FrozenBatchNorm2d and BatchNorms in eval mode: the same
    gradients as the op chain, and the running statistics updated as nn.BatchNorm2d does."""
    use_backend(monkeypatch, backend)
    model = convert(authors_model("m0", features_only=True).train())
    chain_model = copy.deepcopy(model)
    x, target = torch.randn(2, 3, 64, 96), torch.tensor([3, 7])
    loss, lean = gradients(model, x, target)
    with autograd_chain_shift_max():
        chain_loss, chain = gradients(chain_model, x, target)
    assert relative_error(loss, chain_loss) < 1e-6
    assert relative_error(lean, chain) < 1e-5
    for (name, mine), want in zip(model.named_buffers(), chain_model.buffers()):
        assert torch.equal(mine, want), name


@pytest.mark.parametrize("backend", BACKENDS)
def test_bfloat16_autocast_loss_matches_float32(monkeypatch, backend):
    use_backend(monkeypatch, backend)
    model = authors_model("m1").train()
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    x, target = torch.randn(2, 3, 64, 64), torch.tensor([1, 2])
    loss, _ = gradients(model, x, target)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed_loss, mixed = gradients(model, x, target)
    assert torch.isfinite(mixed).all()
    assert relative_error(mixed_loss.float(), loss) < 2e-2
