"""Which implementation runs: the native extension where `make setup` built it, else PyTorch."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from micronet_backbones import kernels


def test_reports_the_path_in_use():
    status = kernels.status()
    print(f"micronet kernels: {status.backend} ({status.reason})")  # shown with pytest -s / -rA
    assert status.backend in ("native", "pytorch")
    assert kernels.native_available() == (status.backend == "native")
    if os.environ.get("MICRONET_KERNELS", "auto") == "pytorch":
        assert status.backend == "pytorch"
    elif shutil.which("c++") or shutil.which("g++"):
        # make setup builds the extension with this compiler: a fallback here is a build failure
        assert status.backend == "native", status.reason


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_fallback_without_the_extension_trains_and_infers():
    """MICRONET_KERNELS=pytorch: the extension is not loaded, no micronet:: op exists, and a
    model still trains (memory-lean Shift-Max through the PyTorch recompute) and infers."""
    code = """
import torch
import micronet_backbones as mb
from micronet_backbones import kernels
from micronet_backbones.deploy import to_inference_form
print(kernels.status().backend)
assert not hasattr(torch.ops.micronet, "shift_max") or not kernels.native_available()
model = mb.create_model("micronet_m0").train()
model(torch.randn(2, 3, 64, 64)).sum().backward()
fast = to_inference_form(model.eval())
with torch.no_grad():
    assert torch.allclose(fast(torch.ones(1, 3, 64, 64)), model(torch.ones(1, 3, 64, 64)),
                          rtol=1e-4, atol=1e-5)
print("ok")
"""
    result = run_python(code, MICRONET_KERNELS="pytorch")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["pytorch", "ok"]


def test_unknown_choice_is_a_clear_error():
    result = run_python(
        "from micronet_backbones import kernels; kernels.status()", MICRONET_KERNELS="fast"
    )
    assert result.returncode != 0
    assert "MICRONET_KERNELS must be 'auto', 'native' or 'pytorch', got 'fast'" in result.stderr


@pytest.mark.skipif(not kernels.native_available(), reason="native kernels not built")
def test_native_choice_loads_the_extension():
    result = run_python(
        "from micronet_backbones import kernels; print(kernels.status().backend)",
        MICRONET_KERNELS="native",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "native"
