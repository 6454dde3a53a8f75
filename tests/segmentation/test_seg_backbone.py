"""The MicroNet backbone of the segmentation configs: the one OpenMMLab backbone, registered in
MMSegmentation; the authors' checkpoint loads into it through the configs' ``init_cfg``, and
its stride-16 output is the core's stride-16 feature (``output_stride=16``)."""

from __future__ import annotations

import pytest
import torch
from micronet_testing import compact_fixture, relative_error
from mmengine.config import Config
from seg_helpers import CITYSCAPES, FEATURE_CHANNELS

import micronet_backbones as mb
from micronet_backbones.openmmlab import MicroNetBackbone

TOLERANCE = 1e-5  # relative, as the core's parity tests


def _segmentor(config_arch: str, checkpoint=None, **backbone):
    """The Cityscapes config's segmentor of ``arch``, the authors' checkpoint as init_cfg."""
    from mmseg.registry import MODELS

    cfg = Config.fromfile(str(CITYSCAPES[config_arch]))
    cfg.model.backbone.init_cfg = (
        None if checkpoint is None else dict(type="Pretrained", checkpoint=str(checkpoint))
    )
    cfg.model.backbone.update(backbone)
    return MODELS.build(cfg.model)


def test_mmseg_registers_the_shared_openmmlab_backbone():
    from mmseg.registry import MODELS

    assert MODELS.get("MicroNet") is MicroNetBackbone
    mmpose = pytest.importorskip("mmpose.registry")
    import micronet_backbones.pose  # noqa: F401

    assert mmpose.MODELS.get("MicroNet") is MicroNetBackbone  # one class, not a copy


@pytest.mark.parametrize("arch", ["m1", "m2", "m3"])
def test_authors_checkpoint_loads_and_stride16_output_is_the_cores(arch, authors_checkpoint):
    fixture, path = compact_fixture(arch), authors_checkpoint(arch)
    model = _segmentor(arch, path)
    model.init_weights()  # through the config's init_cfg; classifier keys skipped by name
    backbone = model.backbone.eval()
    assert [i.stride for i in backbone.feature_info] == [8, 16]
    assert tuple(i.channels for i in backbone.feature_info) == FEATURE_CHANNELS[arch]

    core = mb.create_model(
        arch, pretrained=path, features_only=True, out_strides=(8, 16), output_stride=16
    ).eval()
    with torch.no_grad():
        ours, theirs = backbone(fixture["input"]), core(fixture["input"])
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    height, width = fixture["input"].shape[-2:]
    assert ours[1].shape == (2, FEATURE_CHANNELS[arch][1], height // 16, width // 16)
    # the stride-8 feature is untouched by the stride adjustment: the authors' own output
    assert relative_error(ours[0], fixture["features"][8]) < TOLERANCE


def test_mismatched_checkpoint_is_an_error_naming_the_keys_and_loads_nothing(
    authors_checkpoint, tmp_path
):
    state = torch.load(authors_checkpoint("m3"), map_location="cpu", weights_only=True)
    extra = tmp_path / "extra_key.pth"
    torch.save({**state, "features.99.weight": torch.zeros(1)}, extra)
    misshapen = tmp_path / "misshapen.pth"
    key = next(k for k in state if k.startswith("features.1.") and state[k].dim() == 4)
    torch.save({**state, key: torch.zeros(1, *state[key].shape[1:])}, misshapen)
    for path, message in ((extra, "features.99.weight"), (misshapen, "shape mismatches")):
        model = _segmentor("m3", path)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(mb.CheckpointError, match=message):
            model.init_weights()
        for name, value in model.backbone.state_dict().items():
            assert torch.equal(value, before[f"backbone.{name}"]), f"{name} changed"


def test_checkpoint_of_another_arch_is_an_error(authors_checkpoint):
    model = _segmentor("m3", authors_checkpoint("m2"))
    with pytest.raises(
        mb.CheckpointError, match="is a micronet_m2, but the model is a micronet_m3"
    ):
        model.init_weights()


def test_unknown_arch_is_an_error_listing_the_valid_ones():
    with pytest.raises(ValueError, match=r"m9.*micronet_m0, micronet_m1, micronet_m2, micronet_m3"):
        _segmentor("m3", arch="m9")
