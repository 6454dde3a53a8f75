"""Helpers for the inference-form tests: models with random, non-trivial eval statistics."""

from __future__ import annotations

import torch
from micronet_testing import relative_error  # noqa: F401 (the deploy tests import it from here)
from torch import nn

import micronet_backbones as mb
from micronet_backbones.ops import DynamicShiftMax

TOLERANCE = 1e-5


@torch.no_grad()
def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random BatchNorm statistics and affine parameters (so folding is really tested) and
    Shift-Max hyper-functions far from their near-constant init (so every coefficient and
    both branches of the max matter), at scales that keep the float32 network well
    conditioned (its own float32 rounding stays far below the 1e-5 tolerance; the float64
    test checks exactness beyond rounding). Returns ``model`` in eval mode."""
    generator = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.rand(*shape, generator=generator)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            n = module.num_features
            module.running_mean.copy_(randn(n) * 0.2)
            module.running_var.copy_(rand(n) + 0.5)
            module.weight.copy_(rand(n) * 0.8 + 0.6)
            module.bias.copy_(randn(n) * 0.2)
        elif isinstance(module, DynamicShiftMax):
            module.fc1.weight.copy_(randn(*module.fc1.weight.shape) * 0.2)
            module.fc2.weight.copy_(randn(*module.fc2.weight.shape) * 0.2)
            module.fc2.bias.copy_(randn(*module.fc2.bias.shape))
            if module.spatial is not None:
                module.spatial.weight.copy_(randn(*module.spatial.weight.shape) * 0.5)
                module.spatial.bias.copy_(randn(1))
    return model.eval()


def random_model(name: str, seed: int = 0, **kwargs) -> mb.MicroNet:
    torch.manual_seed(seed)
    return randomize(mb.create_model(name, **kwargs), seed)
