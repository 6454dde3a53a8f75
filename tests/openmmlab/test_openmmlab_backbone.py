"""The shared OpenMMLab backbone: no toolbox imported, any input size, detection's stride 32."""

import subprocess
import sys

import pytest
import torch

pytest.importorskip("mmengine")

import micronet_backbones as mb  # noqa: E402
from micronet_backbones.openmmlab import MicroNetBackbone  # noqa: E402

TOOLBOXES = ("mmpose", "mmseg", "mmdet")


def test_importing_it_imports_no_toolbox():
    code = (
        "import sys, micronet_backbones.openmmlab, micronet_backbones.openmmlab.cli\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {TOOLBOXES!r}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "[]"


def test_odd_sized_input_gives_ceil_sized_maps_equal_to_the_core():
    backbone = MicroNetBackbone("micronet_m1", out_strides=(4, 8, 16, 32), output_stride=32).eval()
    core = mb.create_model("m1", features_only=True, out_strides=(4, 8, 16, 32)).eval()
    core.load_state_dict(backbone.body.state_dict())
    x = torch.randn(1, 3, 333, 517)
    with torch.no_grad():
        ours, theirs = backbone(x), core(x)
    assert [f.shape[-2:] for f in ours] == [(-(-333 // s), -(-517 // s)) for s in (4, 8, 16, 32)]
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [i.stride for i in backbone.feature_info] == [4, 8, 16, 32]


def test_init_cfg_other_than_pretrained_goes_to_mmengine():
    backbone = MicroNetBackbone(
        "m0", init_cfg=dict(type="Constant", layer="BatchNorm2d", val=0.5, bias=0.0)
    )
    backbone.init_weights()
    assert float(backbone.body.stem.bn_1xk.weight.detach().mean()) == 0.5
