#!/usr/bin/env python
"""Pose quick-start: train MicroNet-M3 + Micro-Block head on a generated COCO-keypoints set.

1. writes a small stick-figure set (17 COCO joints at varied poses, positions and scales) in
   COCO format under ``OUT/data`` (see ``micronet_backbones.synthetic.figures``);
2. evaluates the untrained model with MMPose's ``CocoMetric``, trains it with MMEngine's
   ``Runner`` and ``configs/pose/micronet-m3_synthetic-128x96.py``, and evaluates it again;
3. reloads the saved checkpoint with ``mmpose.apis.init_model``, runs ``inference_topdown`` on
   validation images and draws the predicted skeletons with MMPose's visualizer into
   ``OUT/predictions.png``;
4. writes the figures to ``OUT/summary.json``.

Runs on 2 CPU cores in well under 10 minutes, downloads nothing. The steps live in
``micronet_backbones.pose.quickstart``.

    python tools/quickstart_pose.py [--out output/quickstart/pose] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from micronet_backbones.pose.quickstart import run_quickstart

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "pose" / "micronet-m3_synthetic-128x96.py"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "output" / "quickstart" / "pose")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--epochs", type=int, default=None, help="default: the config's")
    parser.add_argument("--num-train", type=int, default=400)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--num-drawn", type=int, default=12, help="images in predictions.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    summary = run_quickstart(
        args.config, args.out, num_train=args.num_train, num_val=args.num_val,
        epochs=args.epochs, num_drawn=args.num_drawn, seed=args.seed,
    )  # fmt: skip
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
