"""MicroNet through timm's registry: same models, features, weights and errors as the core's.

The weights are the compact parity fixtures' (tests/fixtures, rebuilt from their formula and
saved in the authors' format), so ``pretrained=True`` never downloads here.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("timm.models")

import timm  # noqa: E402
from micronet_testing import ARCHS, STRIDES, compact_fixture, relative_error  # noqa: E402

import micronet_backbones as mb  # noqa: E402
from micronet_backbones import CheckpointError  # noqa: E402

NAMES = [f"micronet_{arch}" for arch in ARCHS]
TOLERANCE = 1e-5  # the core's parity tolerance (tests/core/test_parity.py)
REPO_ROOT = Path(__file__).resolve().parents[2]
PAPER_TOP1 = {
    "micronet_m0": "46.6",
    "micronet_m1": "51.4",
    "micronet_m2": "59.4",
    "micronet_m3": "62.5",
}


def _overlay(path) -> dict:
    return dict(pretrained_cfg_overlay=dict(file=str(path)))


def test_registered_with_pretrained_cfgs():
    assert set(NAMES) <= set(timm.list_models("micronet_*"))
    assert {f"{n}.in1k" for n in NAMES} <= set(timm.list_models("micronet_*", pretrained=True))
    for name in NAMES:
        cfg = timm.models.get_pretrained_cfg(name)
        assert cfg.url == mb.get_spec(name).url
        assert (cfg.input_size, cfg.crop_pct, cfg.interpolation) == (
            (3, 224, 224),
            0.875,
            "bilinear",
        )
        assert cfg.mean == (0.485, 0.456, 0.406) and cfg.std == (0.229, 0.224, 0.225)
        assert PAPER_TOP1[name] in cfg.description
        model = mb.create_model(name)
        first_conv = model.get_submodule(cfg.first_conv)
        assert isinstance(first_conv, torch.nn.Conv2d) and first_conv.in_channels == 3
        assert model.get_submodule(cfg.classifier).out_features == cfg.num_classes == 1000


@pytest.mark.parametrize("name", NAMES)
def test_same_outputs_as_the_core_for_the_same_weights(name):
    torch.manual_seed(0)
    ours = mb.create_model(name).eval()
    theirs = timm.create_model(name).eval()
    assert type(theirs) is type(ours)
    theirs.load_state_dict(ours.state_dict())  # same module names, strict
    x = torch.randn(2, 3, 97, 130)
    with torch.no_grad():
        assert torch.equal(theirs(x), ours(x))
    assert theirs.pretrained_cfg["architecture"] == name


@pytest.mark.parametrize("name", NAMES)
def test_features_only_matches_the_core_map_for_map(name):
    ours = mb.create_model(name, features_only=True, out_strides=(8, 16, 32)).eval()
    theirs = timm.create_model(name, features_only=True, out_indices=(1, 2, -1)).eval()
    theirs.micronet.load_state_dict(ours.state_dict())
    assert theirs.feature_info.channels() == [info.channels for info in ours.feature_info]
    assert theirs.feature_info.reduction() == [8, 16, 32]
    x = torch.randn(2, 3, 96, 128)
    with torch.no_grad():
        maps_theirs, maps_ours = theirs(x), ours(x)
    assert len(maps_theirs) == len(maps_ours) == 3
    for a, b in zip(maps_theirs, maps_ours):
        assert torch.equal(a, b)
    every = timm.create_model(name, features_only=True)
    assert every.feature_info.reduction() == list(STRIDES)
    last_two = timm.create_model(name, features_only=True, out_indices=2)  # timm: the last n
    assert last_two.feature_info.reduction() == [16, 32]


@pytest.mark.parametrize("arch", ARCHS)
def test_pretrained_file_reproduces_the_authors_logits_and_features(arch, authors_checkpoint):
    name, fixture = f"micronet_{arch}", compact_fixture(arch)
    model = timm.create_model(name, pretrained=True, **_overlay(authors_checkpoint(arch))).eval()
    features = timm.create_model(
        name, pretrained=True, features_only=True, **_overlay(authors_checkpoint(arch))
    ).eval()
    with torch.no_grad():
        logits, maps = model(fixture["input"]), features(fixture["input"])
    assert relative_error(logits, fixture["logits"]) < TOLERANCE
    for stride, feature in zip(features.feature_info.reduction(), maps):
        assert relative_error(feature, fixture["features"][stride]) < TOLERANCE, stride


def test_num_classes_resets_only_the_last_classifier_layer(authors_checkpoint):
    path = authors_checkpoint("m1")
    reference = mb.create_model("micronet_m1", pretrained=path)
    model = timm.create_model(
        "micronet_m1", pretrained=True, num_classes=10, **_overlay(path)
    ).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    expected = reference.state_dict()
    for key, value in model.state_dict().items():
        if key.startswith(("head.fc2.", "head.bn2.")):
            assert value.dim() == 0 or value.shape[0] == 10, key  # dim 0: num_batches_tracked
        else:
            assert torch.equal(value, expected[key]), key


def _core_error(*args, **kwargs) -> tuple[type, str]:
    with pytest.raises(Exception) as error:
        mb.create_model(*args, **kwargs)
    return type(error.value), str(error.value)


def test_checkpoint_of_another_arch_raises_the_core_error(authors_checkpoint):
    path = authors_checkpoint("m2")
    kind, message = _core_error("micronet_m3", pretrained=path)
    assert kind is CheckpointError and "micronet_m2" in message and "micronet_m3" in message
    with pytest.raises(CheckpointError) as error:
        timm.create_model("micronet_m3", pretrained=True, **_overlay(path))
    assert str(error.value) == message


def test_unknown_or_unreadable_checkpoint_raises_the_core_error(tmp_path):
    not_a_checkpoint = tmp_path / "weights.pth"
    not_a_checkpoint.write_bytes(b"these are no weights")
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(3, 3)}, foreign)
    for path in (not_a_checkpoint, foreign, tmp_path / "missing.pth"):
        kind, message = _core_error("micronet_m0", pretrained=path)
        assert kind is CheckpointError or path.name == "missing.pth"  # FileNotFoundError
        with pytest.raises(kind) as error:
            timm.create_model("micronet_m0", pretrained=True, **_overlay(path))
        assert str(error.value) == message


def test_unsupported_arguments_are_named():
    with pytest.raises(TypeError, match="drop_path_rate"):
        timm.create_model("micronet_m0", drop_path_rate=0.1)
    with pytest.raises(ValueError, match="in_chans=1"):
        timm.create_model("micronet_m0", in_chans=1)


def _python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_registration_is_lazy_and_works_in_either_import_order():
    """``import micronet_backbones`` does not import timm; importing timm later registers."""
    out = _python(
        "import sys, micronet_backbones\n"
        "print('timm' in sys.modules)\n"
        "import timm\n"
        "print(timm.list_models('micronet_*'))\n"
    )
    assert out.splitlines() == ["False", str(NAMES)]
    out = _python("import timm, micronet_backbones\nprint(timm.list_models('micronet_*'))\n")
    assert out.splitlines() == [str(NAMES)]


def test_without_timm_nothing_changes():
    out = _python(
        "import sys\n"
        "sys.modules['timm'] = None  # as if timm were not installed\n"
        "meta_path = list(sys.meta_path)\n"
        "import micronet_backbones as mb\n"
        "print(sys.meta_path == meta_path, mb.create_model('m0').eval()(__import__('torch').rand(1, 3, 64, 64)).shape)\n"
    )
    assert out.strip() == "True torch.Size([1, 1000])"
