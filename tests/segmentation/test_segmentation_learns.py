"""End to end through tools/train_seg.py: MicroNet-M3 + MR-ASPP learns the generated scenes.

The synthetic config (``configs/segmentation/micronet-m3_mraspp_synthetic-128x128.py``) on a
freshly generated set, trained from random initialisation with the config's own schedule by
the train tool as a user runs it, and evaluated with MMSegmentation's ``IoUMetric`` on the val
split: the same model before training (the config's seed gives the same initial weights) and
the tool's final checkpoint.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
from seg_helpers import REPO_ROOT, SYNTHETIC, data_options

pytestmark = pytest.mark.slow

NUM_TRAIN, NUM_VAL = 300, 60  # the quick-start's


def test_micronet_m3_mraspp_learns_the_generated_scenes(tmp_path, record_property):
    from mmengine.runner import Runner

    from micronet_backbones.openmmlab.cli import load_config, test_main
    from micronet_backbones.synthetic.segmentation_scenes import make_segmentation_scenes

    make_segmentation_scenes(tmp_path / "data", num_train=NUM_TRAIN, num_val=NUM_VAL, seed=0)
    options = data_options(tmp_path / "data")
    work = tmp_path / "work"

    cfg = load_config(str(SYNTHETIC), "mmseg", ["micronet_backbones.segmentation"])
    cfg.merge_from_dict(dict(option.split("=", 1) for option in options))
    cfg.work_dir = str(tmp_path / "untrained")
    untrained = Runner.from_cfg(cfg)
    logging.getLogger("mmengine").setLevel(logging.WARNING)
    before = untrained.test()["mIoU"]

    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "train_seg.py"),
            str(SYNTHETIC),
            "--work-dir",
            str(work),
            "--no-validate",
            "--cfg-options",
            *options,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    (checkpoint,) = work.glob("iter_*.pth")
    assert checkpoint.name == f"iter_{cfg.train_cfg.max_iters}.pth"

    after = test_main(
        [str(SYNTHETIC), str(checkpoint), "--work-dir", str(work), "--cfg-options", *options],
        default_scope="mmseg",
        imports=["micronet_backbones.segmentation"],
    )["mIoU"]
    record_property("mIoU_before", before)
    record_property("mIoU_after", after)
    print(f"\nMicroNet-M3 + MR-ASPP, IoUMetric mIoU before {before:.2f}, after {after:.2f}")
    assert after >= 50.0
    assert after >= before + 25.0
