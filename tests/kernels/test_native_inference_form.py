"""The inference form on the native kernels equals the model (float32 rounding, 1e-5 relative),
runs them, and compiles to one graph with torch.compile(fullgraph=True)."""

from __future__ import annotations

import pytest
import torch
from kernel_helpers import OpLog, as_list, authors_model
from micronet_testing import ARCHS, relative_error

from micronet_backbones import kernels
from micronet_backbones.deploy import to_inference_form
from micronet_backbones.deploy.native_runner import layer_by_layer

TOLERANCE = 1e-5

pytestmark = pytest.mark.skipif(
    not kernels.native_available(), reason=f"native kernels not built: {kernels.status().reason}"
)


LAYER_OPS = {"micronet::fused_shift_max", "micronet::separable_conv", "micronet::grouped_pointwise"}


def check(model, x):
    """Native inference form, layer by layer (the path torch.compile traces; the whole-network
    runner has its own tests), vs the model on PyTorch ops only."""
    with torch.no_grad(), kernels.pytorch_fallback():
        expected = as_list(model.eval()(x))
    fast = to_inference_form(model)
    with torch.no_grad(), layer_by_layer(), OpLog() as log:
        actual = as_list(fast(x))
    assert LAYER_OPS <= log.names
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert relative_error(a, e) < TOLERANCE
    return fast


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", ["classifier", "stride32", "stride16"])
def test_native_inference_form_equals_the_model(arch, kind):
    kwargs = (
        {}
        if kind == "classifier"
        else {"features_only": True, "output_stride": 16 if kind == "stride16" else 32}
    )
    check(authors_model(arch, **kwargs), torch.randn(2, 3, 96, 128))


def test_torch_compile_fullgraph_runs_the_native_ops():
    fast = check(authors_model("m0", features_only=True), torch.randn(1, 3, 64, 64))
    x = torch.randn(1, 3, 64, 64)
    compiled = torch.compile(fast, fullgraph=True)
    with torch.no_grad():
        expected = fast(x)
        actual = compiled(x)
    for a, e in zip(actual, expected):
        assert relative_error(a, e) < TOLERANCE
    explanation = torch._dynamo.explain(fast)(x)
    assert explanation.graph_count == 1 and explanation.graph_break_count == 0
    ops = {str(node.target) for graph in explanation.graphs for node in graph.graph.nodes}
    for name in LAYER_OPS:
        assert any(name.replace("::", ".") in op for op in ops), name


@pytest.mark.parametrize("arch", ["m2", "m3"])
def test_pose_model_with_spatial_attention(arch):
    """The configs/pose top-down model: stride-16 backbone + Micro-Block head whose Shift-Maxes
    have DY-ReLU-C's spatial attention (the native kernel's attention variant)."""
    pytest.importorskip("mmpose")
    from pathlib import Path

    from micronet_backbones.deploy import fuse_heatmap_model
    from micronet_backbones.pose.heatmap_model import COCO_CONFIGS, build_pose_model

    torch.manual_seed(0)
    model = build_pose_model(Path(__file__).resolve().parents[2] / COCO_CONFIGS[f"micronet_{arch}"])
    with torch.no_grad():  # trained-looking statistics, attention and heatmap layer
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0.0, 0.2)
                module.running_var.uniform_(0.5, 1.5)
            elif isinstance(module, torch.nn.Conv2d) and module.out_channels == 1:
                module.weight.normal_(0.0, 0.5)  # the spatial attention's logits
        model.head.final_layer.weight.normal_(0.0, 0.1)
    head = model.eval().head
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad(), kernels.pytorch_fallback():
        expected = head(model.backbone(x))
    fused = fuse_heatmap_model(
        model.backbone.body, [head.stride8, head.stride4], head.final_layer, head.align_corners
    )
    with torch.no_grad(), OpLog() as log:
        actual = fused(x)
    assert "micronet::fused_shift_max" in log.names
    assert relative_error(actual, expected) < TOLERANCE


def test_onnx_export_keeps_standard_ops(tmp_path):
    """Exporting never emits a micronet:: op (the exporter takes the standard-op path)."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from micronet_backbones.deploy.onnx_export import export_onnx

    fast = to_inference_form(authors_model("m0"))
    path = tmp_path / "m0.onnx"
    export_onnx(fast, path, (1, 3, 64, 64), check_batch_sizes=(1,))
    domains = {node.domain for node in onnx.load(str(path)).graph.node}
    assert domains <= {"", "ai.onnx"}
