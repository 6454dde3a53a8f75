"""Helpers of the kernel tests: which implementation to run, real-model fixtures, random
layers, and which operators a call dispatched."""

from __future__ import annotations

import pytest
import torch
from micronet_testing import compact_fixture
from torch.utils._python_dispatch import TorchDispatchMode

import micronet_backbones as mb
from micronet_backbones import kernels
from micronet_backbones.deploy import ChannelPermutation, FusedShiftMax
from micronet_backbones.kernels import loader
from micronet_backbones.ops import DynamicShiftMax

BACKENDS = ("native", "pytorch")


def use_backend(monkeypatch: pytest.MonkeyPatch, backend: str) -> None:
    """Run every caller of the kernels natively (skip when the extension is not built) or
    through the PyTorch fallback (as without the extension)."""
    if backend == "native":
        if not kernels.native_available():
            pytest.skip(f"native kernels not built: {kernels.status().reason}")
    else:
        monkeypatch.setattr(loader, "_status", loader.KernelStatus("pytorch", "forced by a test"))


def authors_model(arch: str, **kwargs) -> mb.MicroNet:
    """``arch`` with the compact fixture's weights (the authors' key names; non-trivial BN
    statistics and Shift-Max hyper-functions)."""
    model = mb.create_model(arch, **kwargs)
    mb.load_pretrained(model, compact_fixture(arch)["state_dict"])
    return model


def as_list(out) -> list[torch.Tensor]:
    """A model's output (logits, or the ``features_only`` list) as a list."""
    return [out] if isinstance(out, torch.Tensor) else list(out)


class OpLog(TorchDispatchMode):
    """Names of the operators dispatched inside the block."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.name())
        return func(*args, **(kwargs or {}))


def random_fused_shift_max(
    channels, groups, k, j, *, spatial=False, squeeze=None, input_permuted=False, output=None,
    seed=0,
) -> FusedShiftMax:  # fmt: skip
    """A FusedShiftMax from a DynamicShiftMax with a random hyper-function (far from init);
    ``output``: None, "gather" (a random permutation) or "shuffle" (a channel shuffle)."""
    torch.manual_seed(seed)
    init = ([[1.0] + [0.0] * (j - 1), [0.5] * j, [0.0] * j] * 2)[:k]
    module = DynamicShiftMax(
        channels,
        groups,
        num_shifts=j,
        num_fusions=k,
        init=init,
        squeeze_channels=squeeze,
        spatial_attention=spatial,
    )
    with torch.no_grad():
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    fused = FusedShiftMax(module.eval())
    if input_permuted:
        fused.absorb_input_permutation(torch.randperm(channels))
    if output == "gather":
        fused.output = ChannelPermutation(torch.randperm(channels))
    elif output == "shuffle":
        fused.output = ChannelPermutation(torch.arange(channels).view(groups, -1).t().reshape(-1))
    return fused
