"""Inference form and ONNX export of the top-down pose model (MicroNet + MicroBlockHead)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from deploy_helpers import TOLERANCE, randomize, relative_error

from micronet_backbones.deploy import fuse_heatmap_model

pytest.importorskip("mmpose")

from micronet_backbones.pose.heatmap_model import build_pose_model  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CONFIGS = {
    "m3": REPO / "configs/pose/micronet-m3_8xb32-250e_coco-256x192.py",
    "m2": REPO / "configs/pose/micronet-m2_8xb32-250e_coco-256x192.py",
}


@pytest.fixture(scope="module")
def export_tool():
    """``tools/export_onnx.py``'s command line, run as a subprocess: ``main(argv)`` returns the
    exit status and prints the tool's output."""
    import subprocess
    import sys
    from types import SimpleNamespace

    def main(argv):
        command = [sys.executable, str(REPO / "tools" / "export_onnx.py"), *argv]
        result = subprocess.run(command, capture_output=True, text=True, timeout=300)
        print(result.stdout, result.stderr[-3000:])
        return result.returncode

    return SimpleNamespace(main=main)


def _heatmaps(model, x):
    with torch.no_grad():
        return model.head(model.backbone(x))


@pytest.mark.parametrize("arch", ["m3", "m2"])
def test_pose_model_inference_form_is_exact(arch):
    model = build_pose_model(CONFIGS[arch])
    randomize(model)
    # The final 1x1 conv starts at N(0, 0.001): give it trained-like weights.
    with torch.no_grad():
        model.head.final_layer.weight.normal_(0.0, 0.1)
        model.head.final_layer.bias.normal_(0.0, 0.1)
    head = model.head
    fused = fuse_heatmap_model(
        model.backbone.body, [head.stride8, head.stride4], head.final_layer, head.align_corners
    )
    x = torch.randn(2, 3, 256, 192)
    expected = _heatmaps(model, x)
    with torch.no_grad():
        actual = fused(x)
    assert actual.shape == (2, 17, 64, 48)
    assert relative_error(actual, expected) < TOLERANCE


def test_pose_export(tmp_path):
    onnxruntime = pytest.importorskip("onnxruntime")  # noqa: F841
    from micronet_backbones.deploy.onnx_export import export_onnx, onnxruntime_session

    config = str(CONFIGS["m3"])
    model = build_pose_model(config)
    randomize(model)
    head = model.head
    fused = fuse_heatmap_model(
        model.backbone.body, [head.stride8, head.stride4], head.final_layer, head.align_corners
    )
    report = export_onnx(fused, tmp_path / "pose.onnx", (1, 3, 256, 192), output_names=["heatmaps"])
    session = onnxruntime_session(report.path)
    x = torch.randn(2, 3, 256, 192)
    (heatmaps,) = session.run(None, {"images": x.numpy()})
    assert relative_error(torch.from_numpy(heatmaps), _heatmaps(model, x)) < 1e-4


def test_pose_export_tool(tmp_path, capsys, export_tool):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "pose.onnx"
    assert (
        export_tool.main(
            ["--kind", "pose", "--pose-config", str(CONFIGS["m3"]), "--output", str(out)]
        )
        == 0
    )
    assert "heatmaps" in capsys.readouterr().out
    assert out.is_file()
