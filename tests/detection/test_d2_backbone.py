"""The bare MicroNet Detectron2 backbone: registration, shapes, freezing, norms, weights, MAdds."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch

pytest.importorskip("detectron2")
from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec  # noqa: E402
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone  # noqa: E402
from detectron2.structures import ImageList  # noqa: E402
from micronet_testing import compact_fixture  # noqa: E402
from torch import nn  # noqa: E402

import micronet_backbones as core  # noqa: E402
from micronet_backbones.detection import MicroNetBackbone, add_micronet_config  # noqa: E402

ARCHS = ["micronet_m0", "micronet_m1", "micronet_m2", "micronet_m3"]
CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "detection"


def _cfg(freeze_at=None, **micronet):
    """A config of the bare backbone: ``freeze_at`` is Detectron2's MODEL.BACKBONE.FREEZE_AT,
    the other keywords MODEL.MICRONET.* keys."""
    cfg = get_cfg()
    add_micronet_config(cfg)
    cfg.MODEL.BACKBONE.NAME = "build_micronet_backbone"
    if freeze_at is not None:
        cfg.MODEL.BACKBONE.FREEZE_AT = freeze_at
    for key, value in micronet.items():
        cfg.MODEL.MICRONET[key.upper()] = value
    return cfg


def test_importing_the_package_registers_the_three_builders():
    for name in ("build_micronet_backbone", "build_micronet_fpn", "build_micronet_retinanet_fpn"):
        assert BACKBONE_REGISTRY.get(name) is not None


def test_add_micronet_config_defaults():
    cfg = _cfg()
    assert cfg.MODEL.MICRONET.ARCH == "micronet_m3"
    assert cfg.MODEL.MICRONET.OUT_FEATURES == ["stride4", "stride8", "stride16", "stride32"]
    assert cfg.MODEL.BACKBONE.FREEZE_AT == 2  # Detectron2's own key and default
    assert "FREEZE_AT" not in cfg.MODEL.MICRONET
    assert cfg.MODEL.MICRONET.NORM == "FrozenBN"
    assert cfg.MODEL.MICRONET.WEIGHTS == ""
    with pytest.raises(KeyError, match="called twice"):
        add_micronet_config(cfg)


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_matches_the_features_for_any_image_size(arch):
    torch.manual_seed(0)
    backbone = build_backbone(_cfg(arch=arch, norm="BN", freeze_at=0)).eval()
    shapes = backbone.output_shape()
    core_info = core.create_model(arch, features_only=True).feature_info
    assert {name: (s.channels, s.stride) for name, s in shapes.items()} == {
        f"stride{info.stride}": (info.channels, info.stride) for info in core_info
    }
    assert backbone.size_divisibility == 32
    # Odd sizes, padded the way Detectron2's models pad (ImageList to size_divisibility).
    images = ImageList.from_tensors(
        [torch.randn(3, 97, 131), torch.randn(3, 224, 225), torch.randn(3, 301, 64)],
        size_divisibility=backbone.size_divisibility,
    )
    padded_h, padded_w = images.tensor.shape[-2:]
    assert padded_h % 32 == 0 and padded_w % 32 == 0
    with torch.no_grad():
        features = backbone(images.tensor)
    assert list(features) == list(shapes)
    for name, feature in features.items():
        stride = shapes[name].stride
        assert tuple(feature.shape) == (
            3,
            shapes[name].channels,
            padded_h // stride,
            padded_w // stride,
        )


def test_out_features_choose_the_strides():
    backbone = build_backbone(_cfg(out_features=["stride16", "stride8"], freeze_at=0, norm="BN"))
    assert list(backbone.output_shape()) == ["stride8", "stride16"]
    assert backbone.size_divisibility == 16
    features = backbone(torch.randn(1, 3, 64, 96))
    assert {k: tuple(v.shape[-2:]) for k, v in features.items()} == {
        "stride8": (8, 12),
        "stride16": (4, 6),
    }
    # The stride-32 stage never runs, so it does not train.
    stride32 = backbone.micronet.stages[3]
    assert not any(p.requires_grad for p in stride32.parameters())


def _frozen_state(backbone):
    """(stem trainable?, trainable per stage) and the number of FrozenBatchNorm2d per part."""
    net = backbone.micronet
    parts = [net.stem] + list(net.stages)
    trainable = [any(p.requires_grad for p in part.parameters()) for part in parts]
    frozen_bn = [sum(isinstance(m, FrozenBatchNorm2d) for m in part.modules()) for part in parts]
    plain_bn = [sum(isinstance(m, nn.BatchNorm2d) for m in part.modules()) for part in parts]
    return trainable, frozen_bn, plain_bn


@pytest.mark.parametrize("freeze_at", [0, 1, 2, 3, 4, 5])
def test_freeze_at_freezes_the_stem_then_one_stride_stage_more_per_step(freeze_at):
    backbone = build_backbone(_cfg(freeze_at=freeze_at, norm="BN"))
    trainable, frozen_bn, plain_bn = _frozen_state(backbone)
    for part in range(5):  # stem, stride 4, 8, 16, 32
        is_frozen = part < freeze_at
        assert trainable[part] is not is_frozen
        assert (frozen_bn[part] > 0) is is_frozen
        assert (plain_bn[part] > 0) is not is_frozen
    # Gradients reach exactly the parts that are not frozen.
    loss = sum(f.mean() for f in backbone(torch.randn(2, 3, 64, 64)).values())
    assert loss.requires_grad is (freeze_at < 5)
    if loss.requires_grad:
        loss.backward()
    net = backbone.micronet
    for part, module in enumerate([net.stem] + list(net.stages)):
        got_grad = any(p.grad is not None for p in module.parameters())
        assert got_grad is (part >= freeze_at)


@pytest.mark.parametrize(
    "norm, norm_type",
    [("BN", nn.BatchNorm2d), ("FrozenBN", FrozenBatchNorm2d), ("SyncBN", nn.SyncBatchNorm)],
)
def test_norm_choice_applies_to_the_trainable_blocks(norm, norm_type):
    backbone = build_backbone(_cfg(freeze_at=2, norm=norm))

    def norms_of(part):
        norm_types = (nn.modules.batchnorm._NormBase, FrozenBatchNorm2d)
        return [type(m) for m in part.modules() if isinstance(m, norm_types)]

    assert set(norms_of(backbone.micronet.stages[1])) == {norm_type}
    assert set(norms_of(backbone.micronet.stem)) == {FrozenBatchNorm2d}


@pytest.mark.parametrize(
    "micronet, message",
    [
        ({"arch": "micronet_m9"}, "unknown model 'micronet_m9'"),
        ({"out_features": ["res4"]}, "unknown MicroNet feature 'res4'"),
        ({"out_features": []}, "distinct names"),
        ({"norm": "GN"}, "norm must be one of"),
        ({"freeze_at": 6}, "freeze_at must be in 0..5"),
        ({"freeze_at": -1}, "freeze_at must be in 0..5"),
    ],
)
def test_bad_settings_are_named(micronet, message):
    with pytest.raises(ValueError, match=message):
        build_backbone(_cfg(**micronet))


def test_missing_micronet_config_and_wrong_channels_are_named():
    cfg = get_cfg()
    cfg.MODEL.BACKBONE.NAME = "build_micronet_backbone"
    with pytest.raises(KeyError, match="add_micronet_config"):
        build_backbone(cfg)
    with pytest.raises(ValueError, match="3-channel"):
        BACKBONE_REGISTRY.get("build_micronet_backbone")(_cfg(), ShapeSpec(channels=1))


def test_freeze_at_is_detectron2s_own_key(tmp_path):
    assert build_backbone(_cfg()).freeze_at == 2  # Detectron2's default
    cfg = _cfg()
    cfg.merge_from_list(["MODEL.BACKBONE.FREEZE_AT", "0"])
    assert build_backbone(cfg).freeze_at == 0
    # The former MicroNet-only key is gone; a config that still sets it names the key to use.
    old = tmp_path / "old.yaml"
    old.write_text("MODEL:\n  MICRONET:\n    FREEZE_AT: 0\n")
    with pytest.raises(
        KeyError, match="MODEL.MICRONET.FREEZE_AT.*renamed.*MODEL.BACKBONE.FREEZE_AT"
    ):
        _cfg().merge_from_file(str(old))


def test_both_arch_spellings_and_a_bad_one_lists_valid_names():
    for arch in ("m2", "M2", "micronet_m2"):
        backbone = build_backbone(_cfg(arch=arch, norm="BN", freeze_at=0))
        assert backbone.micronet.spec.name == "micronet_m2"
        assert MicroNetBackbone(arch).micronet.spec.name == "micronet_m2"
    valid = r"valid names: micronet_m0, micronet_m1, micronet_m2, micronet_m3 \(or m0, m1, m2, m3\)"
    with pytest.raises(ValueError, match=r"MODEL\.MICRONET\.ARCH: unknown model 'm7'; " + valid):
        build_backbone(_cfg(arch="m7"))
    with pytest.raises(ValueError, match=r"unknown model 'resnet50'; " + valid):
        MicroNetBackbone("resnet50")


def test_an_undownloadable_weights_url_says_the_download_failed_and_what_to_do_offline(
    tmp_path, monkeypatch
):
    """The COCO configs name the authors' URL; offline, its download fails (simulated here: no
    network is touched) and the error says so, with the two offline ways."""
    calls = []

    def offline(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    cfg = _cfg()
    cfg.merge_from_file(str(CONFIGS / "faster_rcnn_micronet_m3_fpn_3x.yaml"))
    url = cfg.MODEL.MICRONET.WEIGHTS
    assert url == "http://www.svcl.ucsd.edu/projects/micronet/assets/micronet-m3.pth"
    with pytest.raises(core.CheckpointDownloadError) as info:
        build_backbone(cfg)
    message = str(info.value)
    assert calls == [url] and info.value.url == url
    assert message.startswith(f"the download of {url} failed (URLError")
    assert "Temporary failure in name resolution" in message
    assert (
        "MODEL.MICRONET.WEIGHTS names it; offline, set MODEL.MICRONET.WEIGHTS to a local "
        in message
    )
    assert 'a local copy of the file, or to "" and MODEL.WEIGHTS' in message
    assert "could not be read as a PyTorch checkpoint" not in message


@pytest.mark.parametrize("arch", ARCHS)
def test_fvcore_madds_equal_the_core_model_without_its_classifier(arch):
    fvcore_nn = pytest.importorskip("fvcore.nn")
    x = torch.randn(1, 3, 224, 224)

    def count(model):
        analysis = fvcore_nn.FlopCountAnalysis(model.eval(), x)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return analysis

    classifier = count(core.create_model(arch))
    without_classifier = classifier.total() - classifier.by_module()["head"]
    backbone = count(MicroNetBackbone(arch, norm="BN", freeze_at=0))
    assert backbone.total() == without_classifier
    assert classifier.by_module()["head"] > 0


@pytest.mark.parametrize("norm", ["BN", "FrozenBN"])
@pytest.mark.parametrize("arch", ["micronet_m2", "micronet_m3"])
def test_authors_weights_load_at_build_time(authors_checkpoint, arch, norm):
    fixture_path = authors_checkpoint(arch)
    fixture = compact_fixture(arch)
    backbone = build_backbone(
        _cfg(arch=arch, weights=str(fixture_path), norm=norm, freeze_at=2)
    ).eval()
    with torch.no_grad():
        features = backbone(fixture["input"])
    for stride in (4, 8, 16, 32):
        torch.testing.assert_close(
            features[f"stride{stride}"], fixture["features"][stride], rtol=1e-5, atol=1e-6
        )


def test_weights_of_another_arch_are_an_error_and_name_it(authors_checkpoint):
    with pytest.raises(
        core.CheckpointError, match="is a micronet_m2, but the model is a micronet_m3"
    ):
        build_backbone(_cfg(arch="micronet_m3", weights=str(authors_checkpoint("m2"))))
