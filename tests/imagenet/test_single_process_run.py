"""One process, no process group: warm-up, mixup and label smoothing on a tiny folder; the
checkpoint it writes loads into both downstream adapters."""

from __future__ import annotations

import json
import math

import pytest
import torch
from imagenet_folder import (
    COLOURS,
    assert_detectron2_backbone_loads,
    assert_openmmlab_backbone_loads,
    make_image_folder,
)

BATCHES_PER_EPOCH = 4  # 4 classes x 8 images / batch 8


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, tool):
    """Two epochs of M0 on 4 x 8 images (32 x 32 crops), warm-up 1 epoch, mixup, smoothing."""
    root = tmp_path_factory.mktemp("small")
    data = make_image_folder(root / "data", COLOURS, 8, 2, size=40)
    run_dir = root / "run"
    tool.main(
        [
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
            "0.2",
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
            "--workers",
            "0",
            "--device",
            "cpu",
            "--print-freq",
            "2",
        ]
    )
    return data, run_dir


def test_lr_follows_warmup_then_cosine(small_run):
    _, run_dir = small_run
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [row["epoch"] for row in log] == [1, 2]
    # The logged lr is that of each epoch's last step: iteration 3 of a 4-step warm-up, then
    # iteration 7 of 8, three quarters through the cosine.
    assert log[0]["lr"] == pytest.approx(0.2 * 3 / 4)
    assert log[1]["lr"] == pytest.approx(0.2 * (1 + math.cos(math.pi * 3 / 4)) / 2)
    assert all(math.isfinite(row["train_loss"]) and math.isfinite(row["val_loss"]) for row in log)


def test_checkpoint_records_the_run(small_run):
    _, run_dir = small_run
    checkpoint = torch.load(run_dir / "last.pth", weights_only=True)
    assert checkpoint["epoch"] == 2
    assert checkpoint["scheduler"] == {
        "name": "warmup_cosine",
        "peak_lr": 0.2,
        "total_iters": 2 * BATCHES_PER_EPOCH,
        "warmup_iters": BATCHES_PER_EPOCH,
    }
    assert checkpoint["args"]["mixup"] == 0.2 and checkpoint["args"]["label_smoothing"] == 0.1
    assert checkpoint["args"]["weight_decay"] == 3e-5  # the M0 recipe default
    assert (run_dir / "best.pth").is_file()
    assert (
        torch.load(run_dir / "best.pth", weights_only=True)["best_top1"] == checkpoint["best_top1"]
    )


def test_a_finished_run_is_not_overwritten(small_run, tool):
    data, run_dir = small_run
    with pytest.raises(SystemExit, match="already holds a run"):
        tool.main(
            [
                "--arch",
                "micronet_m0",
                "--data",
                str(data),
                "--output-dir",
                str(run_dir),
                "--device",
                "cpu",
                "--workers",
                "0",
            ]
        )
    with pytest.raises(SystemExit, match="has finished 2 epochs already"):
        tool.main(
            [
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
                "--epochs",
                "2",
                "--device",
                "cpu",
                "--workers",
                "0",
                "--resume",
                str(run_dir / "last.pth"),
            ]
        )


def test_detectron2_backbone_loads_the_checkpoint(small_run):
    _, run_dir = small_run
    assert_detectron2_backbone_loads(run_dir / "last.pth", "micronet_m0")


def test_mmpose_backbone_loads_the_checkpoint(small_run):
    _, run_dir = small_run
    assert_openmmlab_backbone_loads(run_dir / "last.pth", "micronet_m0")


def test_a_run_alone_does_not_resume_as_a_mutual_one(small_run, tool):
    data, run_dir = small_run
    with pytest.raises(SystemExit, match="trained without --mutual-learning"):
        tool.main(
            [
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
                "--epochs",
                "3",
                "--device",
                "cpu",
                "--workers",
                "0",
                "--resume",
                str(run_dir / "last.pth"),
                "--mutual-learning",
            ]
        )
