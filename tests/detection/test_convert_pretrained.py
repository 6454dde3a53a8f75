"""tools/convert_pretrained.py: the authors' checkpoint -> MODEL.WEIGHTS that Detectron2 loads exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

pytest.importorskip("detectron2")
from detectron2.checkpoint import DetectionCheckpointer  # noqa: E402
from detectron2.config import get_cfg  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402
from micronet_testing import compact_fixture  # noqa: E402

from micronet_backbones.detection import add_micronet_config  # noqa: E402
from micronet_backbones.detection.convert import main as convert_main  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "config, arch",
    [
        ("faster_rcnn_micronet_m3_fpn_3x.yaml", "micronet_m3"),
        ("retinanet_micronet_m2_fpn_3x.yaml", "micronet_m2"),
    ],
)
def test_converted_weights_load_through_model_weights(
    authors_checkpoint, tmp_path, capsys, config, arch
):
    fixture_path = authors_checkpoint(arch)
    fixture = compact_fixture(arch)
    out = tmp_path / f"{arch}_d2.pth"
    assert convert_main([str(fixture_path), str(out), "--arch", arch]) == 0
    assert "classifier keys skipped" in capsys.readouterr().out

    cfg = get_cfg()
    add_micronet_config(cfg)
    cfg.merge_from_file(str(REPO_ROOT / "configs" / "detection" / config))
    cfg.merge_from_list(
        ["MODEL.DEVICE", "cpu", "MODEL.MICRONET.WEIGHTS", "", "MODEL.WEIGHTS", str(out)]
    )
    model = build_model(cfg)

    converted = torch.load(out, map_location="cpu", weights_only=True)["model"]
    model_state = model.state_dict()
    backbone_keys = {k for k in model_state if k.startswith("backbone.bottom_up.micronet.")}
    # Every tensor lands on a backbone key of the same shape, and the backbone gets all of them.
    assert set(converted) == backbone_keys
    assert all(converted[k].shape == model_state[k].shape for k in converted)

    DetectionCheckpointer(model).resume_or_load(cfg.MODEL.WEIGHTS, resume=False)
    for key, value in model.state_dict().items():
        if key in converted:
            assert torch.equal(value, converted[key]), key
    model.eval()
    with torch.no_grad():
        features = model.backbone.bottom_up(fixture["input"])
    for name, feature in features.items():
        stride = int(name[len("stride") :])
        torch.testing.assert_close(feature, fixture["features"][stride], rtol=1e-5, atol=1e-6)


def test_a_checkpoint_of_another_arch_is_refused(authors_checkpoint, tmp_path, capsys):
    out = tmp_path / "out.pth"
    rc = convert_main([str(authors_checkpoint("m2")), str(out), "--arch", "micronet_m3"])
    assert rc == 1
    assert (
        "the checkpoint is a micronet_m2, but the model is a micronet_m3" in capsys.readouterr().err
    )
    assert not out.exists()


def test_unreadable_and_missing_inputs_are_named(tmp_path, capsys):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    assert convert_main([str(junk), str(tmp_path / "a.pth"), "--arch", "micronet_m3"]) == 1
    assert "could not be read as a PyTorch checkpoint" in capsys.readouterr().err
    assert (
        convert_main(
            [str(tmp_path / "absent.pth"), str(tmp_path / "b.pth"), "--arch", "micronet_m3"]
        )
        == 1
    )
    assert "no checkpoint file" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        convert_main([str(junk), str(tmp_path / "c.pkl"), "--arch", "micronet_m3"])
