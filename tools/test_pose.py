"""Evaluate a trained top-down pose model with MMEngine's Runner (MMPose's usual flags).

    python tools/test_pose.py CONFIG CHECKPOINT
    python tools/test_pose.py CONFIG CHECKPOINT --cfg-options \
        test_dataloader.dataset.bbox_file=data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json
    torchrun --nproc_per_node 8 tools/test_pose.py CONFIG CHECKPOINT --launcher pytorch
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Evaluate a pose model")
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--work-dir", help="the dir to save evaluation results and logs")
    parser.add_argument("--out", help="also dump the metrics to this file (json/yaml/pkl)")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override settings of the config, as key=value pairs (xxx=yyy)",
    )
    parser.add_argument(
        "--launcher", choices=["none", "pytorch", "slurm", "mpi"], default="none",
        help="job launcher",
    )
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line flags to the config, as MMPose's own tools/test.py does
    (``--cfg-options`` first, so that the dedicated flags win over them)."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint
    return cfg


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = merge_args(Config.fromfile(args.config), args)
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.out:
        from mmengine.fileio import dump

        dump(metrics, args.out)
    return metrics


if __name__ == "__main__":
    main(sys.argv[1:])
