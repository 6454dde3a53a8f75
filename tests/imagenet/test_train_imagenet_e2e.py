"""End to end: two gloo processes train 2 epochs, resume for a 3rd, then evaluate (CPU only)."""

from __future__ import annotations

import json

import pytest
import torch
from imagenet_folder import COLOURS, epoch_lines, read_log, torchrun

from micronet_backbones import create_model
from micronet_backbones.imagenet import val_transform
from micronet_backbones.imagenet.data import image_folder

CHANCE = 100.0 / len(COLOURS)


@pytest.mark.slow
def test_two_processes_train_resume_and_evaluate(colour_folder, tmp_path, tool):
    run_dir = tmp_path / "run"
    common = [
        "--arch",
        "micronet_m0",
        "--data",
        str(colour_folder),
        "--output-dir",
        str(run_dir),
        "--input-size",
        "48",
        "--val-resize",
        "56",
        "--batch-size",
        "16",
        "--lr",
        "0.2",
        "--workers",
        "0",
        "--device",
        "cpu",
        "--no-progress",
        "--print-freq",
        "1000",
    ]

    # Two epochs with two gloo processes, to the end of their schedule.
    first = torchrun([*common, "--epochs", "2"])
    assert "2 process(es) on cpu (gloo)" in first
    assert "batch 16 (8 per process), 24 iterations per epoch" in first  # 384 images / 16
    assert epoch_lines(first) == ["1/2", "2/2"]
    after_two = torch.load(run_dir / "last.pth", weights_only=True)
    assert after_two["epoch"] == 2 and after_two["arch"] == "micronet_m0"
    assert after_two["classes"] == sorted(COLOURS)
    assert [row["epoch"] for row in read_log(run_dir)] == [1, 2]

    # Resume for a third epoch: the run starts at epoch 3, with the weights and optimizer state.
    second = torchrun([*common, "--epochs", "3", "--resume", str(run_dir / "last.pth")])
    assert "2 epochs done, continuing at epoch 3 of 3" in second
    assert epoch_lines(second) == ["3/3"]
    after_three = torch.load(run_dir / "last.pth", weights_only=True)
    assert after_three["epoch"] == 3
    log = read_log(run_dir)
    assert [row["epoch"] for row in log] == [1, 2, 3]
    assert all(key in row for row in log for key in ("lr", "train_loss", "val_top1", "val_top5"))
    # A model restarted from scratch would train at about the loss of epoch 1; resumed, it
    # goes on from where epoch 2 left it.
    assert log[2]["train_loss"] < log[0]["train_loss"]
    assert log[2]["val_top1"] > CHANCE, (
        f"val top-1 {log[2]['val_top1']} is not above chance {CHANCE}"
    )

    # --eval-only on the checkpoint (one process here) gives the last epoch's figures.
    metrics = tool.main(
        [
            "--arch",
            "micronet_m0",
            "--data",
            str(colour_folder),
            "--output-dir",
            str(tmp_path / "eval"),
            "--input-size",
            "48",
            "--val-resize",
            "56",
            "--batch-size",
            "16",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--no-progress",
            "--eval-only",
            "--weights",
            str(run_dir / "last.pth"),
        ]
    )
    assert metrics["samples"] == 8 * len(COLOURS)
    assert metrics["top1"] == pytest.approx(log[2]["val_top1"])
    assert metrics["top5"] == pytest.approx(log[2]["val_top5"])
    assert json.loads((tmp_path / "eval" / "eval.json").read_text())["top1"] == pytest.approx(
        metrics["top1"]
    )

    # The checkpoint loads into create_model and classifies the val folder as the tool said.
    model = create_model(
        "micronet_m0", num_classes=len(COLOURS), pretrained=run_dir / "last.pth"
    ).eval()
    val = image_folder(colour_folder, "val", val_transform(48, 56))
    images = torch.stack([val[i][0] for i in range(len(val))])
    labels = torch.tensor(val.targets)
    with torch.no_grad():
        top1 = 100.0 * (model(images).argmax(dim=1) == labels).float().mean().item()
    assert top1 == pytest.approx(metrics["top1"])
    assert top1 > CHANCE
