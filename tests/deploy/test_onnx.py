"""ONNX export: dynamic batch axis, onnxruntime parity (1e-4 relative) with PyTorch."""

from __future__ import annotations

import pytest
import torch
from deploy_helpers import random_model, relative_error

from micronet_backbones.deploy import to_inference_form

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from micronet_backbones.deploy.onnx_export import (  # noqa: E402
    ExportCheckError,
    export_onnx,
    onnxruntime_session,
)

ONNX_TOLERANCE = 1e-4


def _check_dynamic_batch(path, input_name="images"):
    graph = onnx.load(str(path)).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert graph.input[0].name == input_name
    assert dims[0].dim_param == "batch" and not dims[0].dim_value
    for output in graph.output:
        assert output.type.tensor_type.shape.dim[0].dim_param == "batch"


@pytest.mark.parametrize("name", ["micronet_m0", "micronet_m3"])
def test_fused_classifier(name, tmp_path):
    model = random_model(name)
    fused = to_inference_form(model)
    report = export_onnx(fused, tmp_path / "model.onnx", output_names=["logits"])
    _check_dynamic_batch(report.path)
    assert set(report.errors) == {1, 3}
    assert max(max(e) for e in report.errors.values()) < ONNX_TOLERANCE
    # ... and the exported graph is the original model's function.
    session = onnxruntime_session(report.path)
    x = torch.randn(2, 3, 224, 224)
    (logits,) = session.run(None, {"images": x.numpy()})
    with torch.no_grad():
        assert relative_error(torch.from_numpy(logits), model(x)) < ONNX_TOLERANCE


def test_original_classifier(tmp_path):
    model = random_model("micronet_m1")
    report = export_onnx(model, tmp_path / "original.onnx")
    _check_dynamic_batch(report.path)
    assert not model.training, "export must leave the model in eval mode"


@pytest.mark.parametrize("output_stride", [32, 16])
def test_fused_backbone(output_stride, tmp_path):
    model = random_model("micronet_m2", features_only=True, output_stride=output_stride)
    fused = to_inference_form(model)
    names = [f"stride{info.stride}" for info in model.feature_info]
    report = export_onnx(fused, tmp_path / "backbone.onnx", output_names=names)
    _check_dynamic_batch(report.path)
    session = onnxruntime_session(report.path)
    x = torch.randn(2, 3, 224, 224)
    outputs = session.run(names, {"images": x.numpy()})
    with torch.no_grad():
        expected = model(x)
    assert len(outputs) == len(expected)
    for actual, e in zip(outputs, expected):
        assert relative_error(torch.from_numpy(actual), e) < ONNX_TOLERANCE


def test_export_check_catches_a_mismatch(tmp_path):
    """The export-time check is real: a model whose traced graph differs from its eager
    behaviour (batch-dependent Python branch) fails it."""

    class BatchDependent(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.shape[0] == 1 else x * 3

    with pytest.raises(ExportCheckError, match="batch 3"):
        export_onnx(BatchDependent(), tmp_path / "bad.onnx", (1, 3, 32, 32))


def test_export_tool_backbone(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    tool = Path(__file__).resolve().parents[2] / "tools" / "export_onnx.py"
    out = tmp_path / "m0.onnx"
    result = subprocess.run(
        [
            sys.executable,
            str(tool),
            "--model",
            "m0",
            "--kind",
            "backbone",
            "--output-stride",
            "16",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout
    assert "stride4, stride8, stride16" in printed and "batch 3" in printed
    _check_dynamic_batch(out)
