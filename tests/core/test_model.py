"""Registry, model structure, feature taps, output stride, training behaviour, bad input."""

from __future__ import annotations

import pytest
import torch
from micronet_testing import ARCHS, compact_fixture
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

import micronet_backbones as mb
from micronet_backbones import BlockSpec, block_from_spec, load_pretrained
from micronet_backbones.model import block_module_names

# The fixture README's parameter counts of the authors' models.
PARAMS = {"m0": 1_019_590, "m1": 1_777_587, "m2": 2_393_876, "m3": 2_622_960}
TAP_CHANNELS = {
    "m0": (8, 12, 32, 384),
    "m1": (8, 16, 32, 576),
    "m2": (12, 24, 64, 768),
    "m3": (16, 24, 80, 864),
}


def test_list_models():
    assert mb.list_models() == ["micronet_m0", "micronet_m1", "micronet_m2", "micronet_m3"]


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="micronet_m0, micronet_m1, micronet_m2, micronet_m3"):
        mb.create_model("micronet_m4")


def test_both_spellings_resolve_through_canonical_name():
    for name in ("m3", "M3", " micronet_m3", "MicroNet_M3"):
        assert mb.canonical_name(name) == "micronet_m3"
        assert mb.get_spec(name) is mb.get_spec("micronet_m3")
    assert mb.create_model("m1").spec.name == "micronet_m1"
    valid = r"valid names: micronet_m0, micronet_m1, micronet_m2, micronet_m3 \(or m0, m1, m2, m3\)"
    for bad in ("m4", "micronet", "resnet50", None):
        with pytest.raises(ValueError, match=rf"unknown model {bad!r}; {valid}"):
            mb.canonical_name(bad)
    with pytest.raises(ValueError, match=rf"unknown model 'x3'; {valid}"):
        mb.create_model("x3")


@pytest.mark.parametrize("arch", ARCHS)
def test_parameter_counts_equal_the_authors(arch):
    model = mb.create_model(f"micronet_{arch}")
    assert sum(p.numel() for p in model.parameters()) == PARAMS[arch]


@pytest.mark.parametrize("arch", ARCHS)
def test_feature_taps(arch):
    model = mb.create_model(f"micronet_{arch}", features_only=True).eval()
    assert model.head is None
    assert [(i.channels, i.stride) for i in model.feature_info] == list(
        zip(TAP_CHANNELS[arch], (4, 8, 16, 32))
    )
    assert [i.module for i in model.feature_info] == [
        "stages.0",
        "stages.1",
        "stages.2",
        "stages.3",
    ]
    with torch.no_grad():
        features = model(torch.randn(2, 3, 96, 64))
    assert [tuple(f.shape) for f in features] == [
        (2, c, 96 // s, 64 // s) for c, s in zip(TAP_CHANNELS[arch], (4, 8, 16, 32))
    ]
    # each stage ends with the last block at its stride
    for info in model.feature_info:
        assert model.get_submodule(info.module)[-1].out_channels == info.channels


def test_feature_sizes_are_ceil_of_input_over_stride():
    model = mb.create_model("micronet_m3", features_only=True).eval()
    with torch.no_grad():
        features = model(torch.randn(1, 3, 33, 47))
    assert [tuple(f.shape[-2:]) for f in features] == [(9, 12), (5, 6), (3, 3), (2, 2)]


def test_selected_strides_and_classifier_mode():
    model = mb.create_model("micronet_m1", features_only=True, out_strides=(32, 8)).eval()
    assert [i.stride for i in model.feature_info] == [8, 32]
    with torch.no_grad():
        assert [f.shape[1] for f in model(torch.randn(1, 3, 64, 64))] == [16, 576]
    with pytest.raises(ValueError, match="out_strides"):
        mb.create_model("micronet_m1", features_only=True, out_strides=(2, 4))
    classifier = mb.create_model("micronet_m1", num_classes=7).eval()
    with torch.no_grad():
        assert classifier(torch.randn(2, 3, 64, 64)).shape == (2, 7)
        assert classifier.forward_features(torch.randn(2, 3, 64, 64)).shape == (2, 576, 2, 2)
    assert [i.stride for i in classifier.feature_info] == [4, 8, 16, 32]


@pytest.mark.parametrize("arch", ARCHS)
def test_stages_group_blocks_by_stride(arch):
    model = mb.create_model(f"micronet_{arch}")
    assert len(model.stages) == 4
    assert [i.stride for i in model.stage_info] == [4, 8, 16, 32]
    assert sum(len(stage) for stage in model.stages) == len(model.spec.blocks)
    names = block_module_names(model.spec)
    assert [model.get_submodule(n).spec for n in names] == list(model.spec.blocks)
    kinds = [row.kind for row in model.spec.blocks]
    assert kinds[-1] == "B" and kinds.count("B") == 1 and kinds[0] == "A"


@pytest.mark.parametrize("arch", ["m0", "m2"])
def test_output_stride_16_keeps_the_weights(arch):
    full = mb.create_model(f"micronet_{arch}")
    pose = mb.create_model(f"micronet_{arch}", output_stride=16, features_only=True)
    assert [i.stride for i in pose.stage_info] == [4, 8, 16, 16]
    assert [i.stride for i in pose.feature_info] == [4, 8, 16]
    assert pose.feature_info[-1].module == "stages.3"
    backbone_keys = {k: v.shape for k, v in full.state_dict().items() if not k.startswith("head.")}
    assert {k: v.shape for k, v in pose.state_dict().items()} == backbone_keys
    load_pretrained(pose, compact_fixture(arch)["state_dict"])
    with torch.no_grad():
        features = pose.eval()(torch.randn(1, 3, 256, 192))
    assert features[-1].shape[-2:] == (16, 12)
    strided = [b for stage in pose.stages for b in stage if b.stride == 2]
    assert all(b.spec.stride == 2 for b in strided) and len(strided) == 3
    with pytest.raises(ValueError, match="output_stride"):
        mb.create_model(f"micronet_{arch}", output_stride=4)


@pytest.mark.parametrize("arch", ARCHS)
def test_training_mode_gradients_and_batchnorm_statistics(arch):
    torch.manual_seed(0)
    model = mb.create_model(f"micronet_{arch}").train()
    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    before = [m.running_mean.clone() for m in batchnorms]
    loss = model(torch.randn(2, 3, 64, 64)).square().sum()
    loss.backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not no_grad
    assert all(m.num_batches_tracked.item() == 1 for m in batchnorms)
    assert all(not torch.equal(m.running_mean, b) for m, b in zip(batchnorms, before))


def test_norm_layers_are_plain_and_convertible():
    model = mb.create_model("micronet_m0", features_only=True)
    kinds = {type(m) for m in model.modules() if isinstance(m, nn.modules.batchnorm._NormBase)}
    assert kinds == {nn.BatchNorm2d}
    head_kinds = {type(m) for m in mb.create_model("micronet_m0").head.modules()}
    assert nn.BatchNorm1d in head_kinds

    synced = nn.SyncBatchNorm.convert_sync_batchnorm(
        mb.create_model("micronet_m0", features_only=True)
    )
    assert not any(type(m) is nn.BatchNorm2d for m in synced.modules())
    load_pretrained(synced, compact_fixture("m0")["state_dict"])


def _freeze_batchnorm(module):
    """Replace every BatchNorm2d by torchvision's FrozenBatchNorm2d (as Detectron2 does)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)
    return module


def test_frozen_batchnorm_model_loads_and_matches():
    state = compact_fixture("m0")["state_dict"]
    plain = mb.create_model("micronet_m0", features_only=True)
    load_pretrained(plain, state)
    frozen = _freeze_batchnorm(mb.create_model("micronet_m0", features_only=True))
    assert not any("num_batches_tracked" in k for k in frozen.state_dict())
    load_pretrained(frozen, state)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(plain.eval()(x), frozen.eval()(x)):
            torch.testing.assert_close(a, b)


def test_blocks_from_spec_rows_at_any_width():
    rows = [
        BlockSpec("A", 10, 20, 3, 2, (2, 2), (0, 5), (4, 4), (2, 2, 1), 4),
        BlockSpec("C", 20, 20, 5, 1, (1, 4), (4, 4), (4, 5), (2, 2, 1), 8),
        BlockSpec("C", 20, 24, 3, 2, (1, 3), (5, 5), (6, 4), (0, 2, 0), 8),
        BlockSpec("B", 24, 96, 3, 1, (1, 4), (6, 8), (0, 0), (0, 0, 1), 8),
    ]
    x = torch.randn(2, 10, 33, 40)
    for row in rows:
        block = block_from_spec(row).eval()
        with torch.no_grad():
            x = block(x)
        assert x.shape[1] == row.out_channels
    assert x.shape == (2, 96, 9, 10)
    assert block_from_spec(rows[1]).use_residual
    assert not block_from_spec(rows[2]).use_residual
    assert block_from_spec(rows[0], stride=1).stride == 1
    with pytest.raises(ValueError):
        mb.MicroBlockA(rows[1])
    with pytest.raises(ValueError):
        BlockSpec("B", 24, 95, 3, 1, (1, 4), (6, 8), (0, 0), (0, 0, 1), 8)


@pytest.mark.parametrize("features_only", [False, True])
@pytest.mark.parametrize(
    "shape",
    [
        (3, 64, 64),
        (2, 1, 64, 64),
        (2, 4, 64, 64),
        (1, 3, 31, 64),
        (1, 3, 64, 16),
        (1, 2, 3, 64, 64),
    ],
)
def test_bad_input_raises_value_error_with_expected_shape(shape, features_only):
    model = mb.create_model("micronet_m0", features_only=features_only).eval()
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\) with H, W >= 32"):
        model(torch.randn(*shape))
