"""Helpers of the kernel tests: which implementation to run, and real-model fixtures."""

from __future__ import annotations

import pytest
from micronet_testing import compact_fixture

import micronet_backbones as mb
from micronet_backbones import kernels
from micronet_backbones.kernels import loader

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
