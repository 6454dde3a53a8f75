"""Train a top-down pose model with MMEngine's Runner (MMPose's usual flags).

    python tools/train_pose.py configs/pose/micronet-m3_8xb32-250e_coco-256x192.py
    python tools/train_pose.py CONFIG --work-dir work_dirs/m3 --resume             # latest
    python tools/train_pose.py CONFIG --resume work_dirs/m3/epoch_100.pth
    python tools/train_pose.py CONFIG --cfg-options train_dataloader.batch_size=16

Several GPUs or nodes go through MMEngine's launchers, e.g.

    torchrun --nproc_per_node 8 tools/train_pose.py CONFIG --launcher pytorch
    srun -p PARTITION -N 2 --ntasks-per-node 8 --gres gpu:8 \
        python tools/train_pose.py CONFIG --launcher slurm
"""

from __future__ import annotations

import argparse
import os
import os.path as osp
import sys

from mmengine.config import Config, DictAction
from mmengine.runner import Runner


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Train a pose model")
    parser.add_argument("config", help="train config file path")
    parser.add_argument("--work-dir", help="the dir to save logs and models")
    parser.add_argument(
        "--resume",
        nargs="?",
        type=str,
        const="auto",
        help="resume from this checkpoint; without a path, from the latest one in the work dir",
    )
    parser.add_argument("--amp", action="store_true", help="enable automatic mixed precision")
    parser.add_argument(
        "--no-validate", action="store_true", help="do not evaluate checkpoints during training"
    )
    parser.add_argument(
        "--auto-scale-lr", action="store_true", help="scale the learning rate with the batch size"
    )
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
    # torch.distributed.launch passes --local_rank (older) or --local-rank (newer).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)
    args = parser.parse_args(argv)
    if "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(args.local_rank)
    return args


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Apply the command-line flags to the config, as MMPose's own tools/train.py does
    (``--cfg-options`` first, so that the dedicated flags win over them)."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])

    if args.resume == "auto":
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.amp:
        cfg.optim_wrapper.type = "AmpOptimWrapper"
        cfg.optim_wrapper.setdefault("loss_scale", "dynamic")

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.auto_scale_lr:
        cfg.setdefault("auto_scale_lr", {})
        cfg.auto_scale_lr.enable = True
    return cfg


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cfg = merge_args(Config.fromfile(args.config), args)
    runner = Runner.from_cfg(cfg)
    runner.train()


if __name__ == "__main__":
    main(sys.argv[1:])
