"""--eval-only on a checkpoint in the authors' format (their key names, 1000 classes)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from micronet_backbones import CheckpointError, create_model
from micronet_backbones.imagenet import WarmupCosine, save_checkpoint, topk_correct, val_transform
from micronet_backbones.imagenet.data import image_folder


@pytest.fixture(scope="module")
def thousand_class_val(tmp_path_factory):
    """val/ with 1000 class folders of one random 40 x 40 image each (no train/ needed)."""
    root = tmp_path_factory.mktemp("thousand")
    rng = np.random.default_rng(0)
    for index in range(1000):
        folder = root / "val" / f"n{index:08d}"
        folder.mkdir(parents=True)
        pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "image.png")
    return root


@pytest.mark.slow
def test_eval_only_reads_the_authors_checkpoint(
    authors_checkpoint, thousand_class_val, tmp_path, tool
):
    weights = authors_checkpoint("m0")
    metrics = tool.main(
        [
            "--arch",
            "micronet_m0",
            "--data",
            str(thousand_class_val),
            "--eval-only",
            "--weights",
            str(weights),
            "--input-size",
            "32",
            "--val-resize",
            "36",
            "--batch-size",
            "250",
            "--workers",
            "0",
            "--device",
            "cpu",
            "--no-progress",
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert metrics["samples"] == 1000
    assert json.loads((tmp_path / "eval.json").read_text())["top5"] == pytest.approx(
        metrics["top5"]
    )

    # The same figures computed directly from create_model(pretrained=<authors' file>).
    model = create_model("micronet_m0", pretrained=weights).eval()
    val = image_folder(thousand_class_val, "val", val_transform(32, 36))
    images = torch.stack([val[i][0] for i in range(len(val))])
    with torch.no_grad():
        logits = model(images)
    top1, top5 = topk_correct(logits, torch.tensor(val.targets))
    assert metrics["top1"] == pytest.approx(top1.item() / 10)
    assert metrics["top5"] == pytest.approx(top5.item() / 10)
    assert metrics["loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits, torch.tensor(val.targets)).item(), rel=1e-5
    )


def test_eval_only_refuses_a_checkpoint_of_other_classes(
    colour_folder, tmp_path, tool, authors_checkpoint
):
    # The authors' 1000-class head does not fit the 4-class folder: nothing is loaded.
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatches: head.fc2.weight \(checkpoint \(1000, 640\), model \(4, 640\)\)",
    ):
        tool.main(
            [
                "--arch",
                "micronet_m0",
                "--data",
                str(colour_folder),
                "--eval-only",
                "--weights",
                str(authors_checkpoint("m0")),
                "--input-size",
                "48",
                "--val-resize",
                "56",
                "--workers",
                "0",
                "--device",
                "cpu",
                "--no-progress",
                "--output-dir",
                str(tmp_path),
            ]
        )


def test_eval_only_refuses_our_checkpoint_of_other_class_names(colour_folder, tmp_path, tool):
    model = create_model("micronet_m0", num_classes=4)
    path = tmp_path / "other.pth"
    save_checkpoint(
        path,
        {
            "arch": "micronet_m0",
            "state_dict": model.state_dict(),
            "classes": ["w", "x", "y", "z"],
            "epoch": 1,
            "optimizer": torch.optim.SGD(model.parameters(), lr=0.1).state_dict(),
            "scaler": {},
            "scheduler": WarmupCosine(0.1, 10).state_dict(),
            "best_top1": 0.0,
        },
    )
    with pytest.raises(SystemExit, match="was trained on 4 classes"):
        tool.main(
            [
                "--arch",
                "micronet_m0",
                "--data",
                str(colour_folder),
                "--eval-only",
                "--weights",
                str(path),
                "--workers",
                "0",
                "--device",
                "cpu",
                "--no-progress",
                "--output-dir",
                str(tmp_path),
            ]
        )
