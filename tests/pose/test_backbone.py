"""The MMPose backbone ``MicroNet`` (the shared OpenMMLab backbone registered in MMPose's
``MODELS``): registry, stride adjustment, freezing, the authors' weights."""

import pytest
import torch
from micronet_testing import compact_fixture, relative_error
from mmpose.registry import MODELS
from torch import nn

import micronet_backbones as mb
from micronet_backbones.openmmlab import MicroNetBackbone

TOLERANCE = 1e-5  # relative, as the core's parity tests


def test_mmpose_registers_the_shared_openmmlab_backbone():
    assert MODELS.get("MicroNet") is MicroNetBackbone
    for arch in ("m3", "M3", "micronet_m3"):  # every spelling, through canonical_name
        assert MODELS.build(dict(type="MicroNet", arch=arch)).arch == "micronet_m3"


def test_builds_from_the_registry_with_the_deepest_feature_at_stride_16():
    backbone = MODELS.build(dict(type="MicroNet", arch="m3")).eval()
    with torch.no_grad():
        features = backbone(torch.randn(2, 3, 256, 192))
    assert isinstance(features, tuple) and len(features) == 1
    assert features[0].shape == (2, 864, 16, 12)
    assert [(i.channels, i.stride) for i in backbone.feature_info] == [(864, 16)]

    several = MODELS.build(dict(type="MicroNet", arch="m2", out_strides=(4, 8, 16))).eval()
    with torch.no_grad():
        shapes = [f.shape for f in several(torch.randn(1, 3, 256, 192))]
    assert shapes == [(1, 12, 64, 48), (1, 24, 32, 24), (1, 768, 16, 12)]

    imagenet = MODELS.build(dict(type="MicroNet", arch="m2", output_stride=32, out_strides=(32,)))
    assert imagenet.feature_info[0].stride == 32


def test_frozen_stages_and_norm_eval():
    backbone = MODELS.build(dict(type="MicroNet", arch="m3", frozen_stages=2, norm_eval=True))
    backbone.train()
    body = backbone.body
    frozen = [body.stem, body.stages[0], body.stages[1]]
    for module in frozen:
        assert not module.training
        assert all(not p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in body.stages[2].parameters())
    assert all(not m.training for m in backbone.modules() if isinstance(m, nn.BatchNorm2d))
    assert body.stages[2].training  # norm_eval leaves the other layers in training mode
    backbone(torch.randn(2, 3, 64, 48))[-1].sum().backward()
    assert all(p.grad is None for m in frozen for p in m.parameters())
    assert body.stages[3][0].expand.conv.weight.grad is not None

    plain = MODELS.build(dict(type="MicroNet", arch="m3")).train()
    assert all(m.training for m in plain.modules())


def test_bad_settings_raise_clear_errors():
    with pytest.raises(
        ValueError,
        match=r"arch: unknown model 'm9'; valid names: micronet_m0, "
        r"micronet_m1, micronet_m2, micronet_m3 \(or m0, m1, m2, m3\)",
    ):
        MODELS.build(dict(type="MicroNet", arch="m9"))
    with pytest.raises(ValueError, match="frozen_stages"):
        MODELS.build(dict(type="MicroNet", arch="m3", frozen_stages=5))
    with pytest.raises(ValueError, match="out_strides"):
        MODELS.build(dict(type="MicroNet", arch="m3", out_strides=(32,)))
    with pytest.raises(ValueError, match="Pretrained"):
        MODELS.build(dict(type="MicroNet", init_cfg=dict(type="Pretrained", prefix="backbone.")))


@pytest.fixture(scope="module")
def authors_m3(authors_checkpoint):
    """The authors' M3 fixture (compact, tests/fixtures) and its state_dict saved as a bare
    checkpoint file."""
    return compact_fixture("m3"), authors_checkpoint("m3")


def test_authors_checkpoint_loads_every_backbone_weight_and_matches_stride_16(authors_m3):
    fixture, path = authors_m3
    backbone = MODELS.build(
        dict(type="MicroNet", arch="m3", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    )
    backbone.init_weights()
    expected = mb.convert_authors_state_dict(fixture["state_dict"], mb.get_spec("micronet_m3"))
    ours = backbone.body.state_dict()
    # every backbone tensor came from the checkpoint (BN counters are optional in the loader)
    for key, value in ours.items():
        if key.endswith("num_batches_tracked") and key not in expected:
            continue
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0, msg=key)
    assert {k for k in expected if not k.startswith("head.")} <= set(ours)

    # The last block at stride 16 before the stride-adjusted ones (end of stage 2) sees the
    # same input as in the ImageNet network: its output is the core's stride-16 feature.
    backbone.eval()
    taps = {}
    backbone.body.stages[2].register_forward_hook(lambda m, i, o: taps.setdefault("s16", o))
    with torch.no_grad():
        deepest = backbone(fixture["input"])[-1]
    error = relative_error(taps["s16"], fixture["features"][16])
    assert error < TOLERANCE, error
    core = mb.create_model("micronet_m3", pretrained=path, features_only=True, out_strides=(16,))
    with torch.no_grad():
        assert relative_error(taps["s16"], core.eval()(fixture["input"])[0]) < TOLERANCE
    height, width = fixture["input"].shape[-2:]
    assert deepest.shape == (2, 864, height // 16, width // 16)  # adjusted blocks keep stride 16


def test_authors_checkpoint_with_module_prefix_and_wrapper_loads(authors_m3, tmp_path):
    fixture, _ = authors_m3
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in fixture["state_dict"].items()}}, path)
    backbone = MODELS.build(
        dict(type="MicroNet", arch="m3", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
    )
    backbone.init_weights()
    expected = mb.convert_authors_state_dict(fixture["state_dict"], mb.get_spec("micronet_m3"))
    torch.testing.assert_close(
        backbone.body.stem.conv_kx1.weight, expected["stem.conv_kx1.weight"], rtol=0, atol=0
    )


def test_wrong_checkpoint_is_an_error_and_loads_nothing(authors_m3, tmp_path):
    fixture, _ = authors_m3
    state = dict(fixture["state_dict"])
    extra = tmp_path / "extra_key.pth"
    torch.save({**state, "features.99.weight": torch.zeros(1)}, extra)
    missing = tmp_path / "missing_key.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("features.5.")}, missing)
    for path, message in ((extra, "features.99.weight"), (missing, "missing keys")):
        backbone = MODELS.build(
            dict(type="MicroNet", arch="m3", init_cfg=dict(type="Pretrained", checkpoint=str(path)))
        )
        before = {k: v.clone() for k, v in backbone.state_dict().items()}
        with pytest.raises(mb.CheckpointError, match=message):
            backbone.init_weights()
        for key, value in backbone.state_dict().items():
            assert torch.equal(value, before[key]), f"{key} changed although loading failed"

    wrong_arch = MODELS.build(
        dict(type="MicroNet", arch="m2", init_cfg=dict(type="Pretrained", checkpoint=str(extra)))
    )
    with pytest.raises(mb.CheckpointError):
        wrong_arch.init_weights()
