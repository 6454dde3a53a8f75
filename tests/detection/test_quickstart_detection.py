"""tools/quickstart_detection.py runs its whole chain (data, registration, training, COCO evaluation, PNG).

A smoke run with a handful of images and iterations; the learning itself is checked by
test_train_net_e2e.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

pytest.importorskip("detectron2")

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_chain_writes_results_and_a_predictions_png(tmp_path):
    command = [
        sys.executable,
        str(REPO_ROOT / "tools" / "quickstart_detection.py"),
        "--output",
        str(tmp_path),
        "--num-train",
        "8",
        "--num-val",
        "4",
        "SOLVER.MAX_ITER",
        "2",
        "SOLVER.IMS_PER_BATCH",
        "2",
        "DATALOADER.NUM_WORKERS",
        "0",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert "bbox AP" in result.stdout
    results = json.loads((tmp_path / "faster_rcnn" / "eval_results.json").read_text())
    assert set(results["bbox"]) >= {"AP", "AP50", "AP75"}
    assert (tmp_path / "faster_rcnn" / "model_final.pth").is_file()
    with Image.open(tmp_path / "faster_rcnn_predictions.png") as png:
        width, height = png.size
    assert (
        width >= 4 * 170 and height >= 150
    )  # one row of four val images (SHAPES: 170-220 x 150-180 px)
