"""End to end, mutual learning: two gloo processes train M0 with its full-rank partner (warm-up,
mixup, label smoothing); a run stopped after its first epoch and resumed gives the same figures
and weights as an uninterrupted one; its checkpoint holds the MicroNet for create_model,
--eval-only and both adapters (CPU only)."""

from __future__ import annotations

import math

import pytest
import torch
from imagenet_folder import (
    COLOURS,
    assert_detectron2_backbone_loads,
    assert_openmmlab_backbone_loads,
    epoch_lines,
    make_image_folder,
    read_log,
    torchrun,
)

from micronet_backbones import create_model

ITERATIONS = 6  # 4 classes x 12 images / batch 8
NETWORK_FIGURES = (
    "train_loss",
    "train_ce",
    "train_kl",
    "train_top1",
    "val_loss",
    "val_top1",
    "val_top5",
)


def _common(data, run_dir, mutual: bool = True) -> list[str]:
    mutual_options = ["--mutual-learning", "--mutual-temperature", "2"] if mutual else []
    return [
        "--arch",
        "micronet_m0",
        "--data",
        str(data),
        "--output-dir",
        str(run_dir),
        "--input-size",
        "32",
        "--val-resize",
        "36",
        "--batch-size",
        "8",
        "--lr",
        "0.1",
        "--epochs",
        "2",
        "--warmup-epochs",
        "1",
        "--mixup",
        "0.2",
        "--mixup-ramp-epochs",
        "1",
        "--label-smoothing",
        "0.1",
        *mutual_options,
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        "--print-freq",
        "1000",
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 2-epoch run twice: straight through, and stopped after epoch 1 then resumed."""
    root = tmp_path_factory.mktemp("mutual")
    data = make_image_folder(root / "data", COLOURS, 12, 2, size=40)
    straight, split = root / "straight", root / "split"
    outputs = {"straight": torchrun(_common(data, straight))}
    outputs["stopped"] = torchrun([*_common(data, split), "--stop-after-epochs", "1"])
    outputs["resumed"] = torchrun([*_common(data, split), "--resume", str(split / "last.pth")])
    return data, straight, split, outputs


@pytest.mark.slow
def test_both_networks_train_under_ddp_and_log_their_terms(runs):
    _, straight, _, outputs = runs
    assert "2 process(es) on cpu (gloo)" in outputs["straight"]
    assert f"batch 8 (4 per process), {ITERATIONS} iterations per epoch" in outputs["straight"]
    assert (
        "mutual learning with the full-rank partner (weight 1, temperature 2)"
        in outputs["straight"]
    )
    assert epoch_lines(outputs["straight"]) == ["1/2", "2/2"]
    log = read_log(straight)
    for row in log:
        for prefix in ("", "partner_"):
            assert all(math.isfinite(row[prefix + key]) for key in NETWORK_FIGURES)
            assert row[prefix + "train_kl"] > 0
            # loss = CE + weight (1) x KL, averaged over the same samples
            assert row[prefix + "train_loss"] == pytest.approx(
                row[prefix + "train_ce"] + row[prefix + "train_kl"], rel=1e-5
            )


@pytest.mark.slow
def test_stopped_and_resumed_equals_uninterrupted(runs):
    _, straight, split, outputs = runs
    assert epoch_lines(outputs["stopped"]) == ["1/2"]
    assert "stopped after epoch 1 of 2" in outputs["stopped"]
    assert "1 epochs done, continuing at epoch 2 of 2" in outputs["resumed"]
    assert epoch_lines(outputs["resumed"]) == ["2/2"]

    # No step lost or repeated: every logged figure of both networks is the uninterrupted run's.
    expected, got = read_log(straight), read_log(split)
    assert [row["epoch"] for row in got] == [1, 2]
    for want, have in zip(expected, got):
        assert set(have) == set(want)
        for key in set(want) - {"seconds"}:
            assert have[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), key

    # And so are both networks' weights and both optimizers' states.
    a = torch.load(straight / "last.pth", weights_only=True)
    b = torch.load(split / "last.pth", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for state_a, state_b in ((a, b), (a["partner"], b["partner"])):
        for key, value in state_a["state_dict"].items():
            assert torch.allclose(value.double(), state_b["state_dict"][key].double(), atol=1e-5), (
                key
            )
        momentum_a = [s["momentum_buffer"] for s in state_a["optimizer"]["state"].values()]
        momentum_b = [s["momentum_buffer"] for s in state_b["optimizer"]["state"].values()]
        assert len(momentum_a) == len(momentum_b) > 0
        assert all(torch.allclose(x, y, atol=1e-5) for x, y in zip(momentum_a, momentum_b))


@pytest.mark.slow
def test_the_checkpoint_holds_the_micronet(runs, tool, tmp_path):
    data, _, split, _ = runs
    checkpoint = split / "last.pth"
    state = torch.load(checkpoint, weights_only=True)
    partner_keys = set(state["partner"]["state_dict"])
    assert partner_keys != set(state["state_dict"])  # the partner is stored apart

    model = create_model("micronet_m0", num_classes=len(COLOURS), pretrained=checkpoint)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state["state_dict"].items())
    metrics = tool.main(
        [
            "--arch",
            "micronet_m0",
            "--data",
            str(data),
            "--output-dir",
            str(tmp_path / "eval"),
            "--input-size",
            "32",
            "--val-resize",
            "36",
            "--batch-size",
            "8",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--no-progress",
            "--eval-only",
            "--weights",
            str(checkpoint),
        ]
    )
    assert metrics["top1"] == pytest.approx(read_log(split)[-1]["val_top1"])

    # Continuing a mutual run needs --mutual-learning again.
    with pytest.raises(SystemExit, match="pass it again"):
        tool.main(
            [*_common(data, split, mutual=False), "--epochs", "3", "--resume", str(checkpoint)]
        )


@pytest.mark.slow
def test_detectron2_backbone_loads_the_checkpoint(runs):
    assert_detectron2_backbone_loads(runs[2] / "last.pth", "micronet_m0")


@pytest.mark.slow
def test_openmmlab_backbone_loads_the_checkpoint(runs):
    assert_openmmlab_backbone_loads(runs[2] / "last.pth", "micronet_m0")
