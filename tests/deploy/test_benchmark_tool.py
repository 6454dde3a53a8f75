"""tools/benchmark.py runs and prints its table (a smoke test: no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from deploy_helpers import TOLERANCE, relative_error

import micronet_backbones as mb

TOOL = Path(__file__).resolve().parents[2] / "tools" / "benchmark.py"


@pytest.fixture(scope="module")
def benchmark():
    from micronet_backbones.kernels import benchmark

    return benchmark


def test_index_gather_baseline_is_the_same_function(benchmark):
    """The training comparison is fair only if the baseline computes the same Shift-Max."""
    torch.manual_seed(0)
    model = mb.create_model("micronet_m0").eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = model(x)
        baseline = benchmark.with_index_gather(model)
        assert any(isinstance(m, benchmark.IndexGatherShiftMax) for m in baseline.modules())
        assert relative_error(baseline(x), expected) < TOLERANCE


def test_calibration_sets_statistics_and_eval_mode(benchmark):
    model = mb.create_model("micronet_m0")
    benchmark.calibrate_batchnorm(model, (4, 3, 64, 64), batches=2)
    assert not model.training
    bn = model.stem.bn_kx1
    assert not torch.allclose(bn.running_var, torch.ones_like(bn.running_var))
    assert bn.momentum == 0.1


def test_benchmark_runs(benchmark, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    plot = tmp_path / "latency.png"
    assert (
        benchmark.main(
            [
                "--runs",
                "3",
                "--allow-few-runs",
                "--warmup",
                "1",
                "--models",
                "micronet_m0",
                "--no-pose",
                "--train-runs",
                "0",
                "--no-memory",
                "--runtimes",
                "eager",
                "onnxruntime",
                "--plot",
                str(plot),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for row in (
        "| MicroNet-M0 |",
        "| MicroNet-M0 fused |",
        "| mobilenet_v3_small x0.5 |",
        "| mobilenet_v3_small x1.0 |",
        "load average",
        "micronet kernels:",
        "| eager ms | eager ratio | onnxruntime ms | onnxruntime ratio |",
        "| fastest runtime | fastest ms | fastest ratio |",
    ):
        assert row in out
    assert plot.is_file() and plot.stat().st_size > 10_000


def test_tool_is_the_package_module():
    """tools/benchmark.py is a thin command line over the package module (no path edits)."""
    result = subprocess.run(
        [sys.executable, str(TOOL), "--help"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "--runtimes" in result.stdout


def test_benchmark_refuses_too_few_runs(benchmark, capsys):
    assert benchmark.main(["--runs", "10"]) == 2
    assert "at least 50" in capsys.readouterr().err
