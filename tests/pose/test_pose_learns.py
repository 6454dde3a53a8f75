"""End to end through MMEngine's Runner: MicroNet-M3 + Micro-Block head learns the generated set.

The quick-start's config (``configs/pose/micronet-m3_synthetic-128x96.py``) on a freshly
generated COCO-keypoints set, trained from random initialisation with the config's own
schedule, and evaluated with MMPose's ``CocoMetric`` on the val split before and after training.
"""

from __future__ import annotations

import logging

import pytest
from pose_helpers import CONFIG_DIR

pytestmark = pytest.mark.slow

SYNTHETIC = CONFIG_DIR / "micronet-m3_synthetic-128x96.py"
NUM_TRAIN, NUM_VAL = 320, 100  # the quick-start makes 400 train images; 320 keep the test shorter


def test_micronet_m3_learns_the_generated_keypoints(tmp_path, record_property):
    from mmengine.runner import Runner

    from micronet_backbones.pose.quickstart import quickstart_config
    from micronet_backbones.synthetic.figures import make_coco_keypoints

    make_coco_keypoints(tmp_path / "data", num_train=NUM_TRAIN, num_val=NUM_VAL, seed=0)
    cfg = quickstart_config(
        SYNTHETIC, tmp_path / "data", tmp_path / "work"
    )  # its schedule as it is
    runner = Runner.from_cfg(cfg)
    logging.getLogger("mmengine").setLevel(logging.WARNING)

    before = runner.test()["coco/AP"]
    runner.train()
    after = runner.test()["coco/AP"]
    record_property("coco_AP_before", before)
    record_property("coco_AP_after", after)
    print(f"\nMicroNet-M3 + Micro-Block head, CocoMetric AP before {before:.3f}, after {after:.3f}")
    assert after >= 0.5
    assert after >= before + 0.4
