"""tools/quickstart_pose.py runs its whole chain (data, Runner training, CocoMetric, init_model, PNG).

A smoke run with a handful of images and one epoch; the learning itself is checked by
test_pose_learns.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from PIL import Image
from pose_helpers import REPO_ROOT


@pytest.mark.slow
def test_quickstart_chain_writes_a_summary_and_a_skeletons_png(tmp_path):
    command = [
        sys.executable,
        str(REPO_ROOT / "tools" / "quickstart_pose.py"),
        "--out",
        str(tmp_path),
        "--num-train",
        "8",
        "--num-val",
        "4",
        "--epochs",
        "1",
        "--num-drawn",
        "4",
    ]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["epochs"] == 1 and summary["images_drawn"] == 4
    # The summary holds the two evaluations the tool ran and printed, untrained first; each is a
    # CocoMetric AP in [0, 1] (COCOeval gives -1 where the val set has no keypoints).
    printed = [float(ap) for ap in re.findall(r"COCO AP (-?\d+\.\d+)", result.stdout)]
    expected = [summary["coco_AP_untrained"], summary["coco_AP_trained"]]
    assert printed == pytest.approx(expected, abs=5e-4), result.stdout[-3000:]
    assert all(0.0 <= ap <= 1.0 for ap in expected)
    assert (tmp_path / "work_dir" / "epoch_1.pth").is_file()
    with Image.open(tmp_path / "predictions.png") as png:
        width, height = png.size
    assert width == 4 * 160 and height == 160  # one row of four 160 x 160 val images
