"""The command line of the OpenMMLab train / test tools, shared by every toolbox's scripts.

``tools/train_pose.py``, ``tools/test_pose.py`` (MMPose), ``tools/train_seg.py`` /
``tools/test_seg.py`` (MMSegmentation) and ``tools/train_mmdet.py`` / ``tools/test_mmdet.py``
(MMDetection) are thin mains over :func:`train_main` and :func:`test_main`: the toolboxes'
usual flags (as in their own ``tools/train.py`` / ``tools/test.py``), applied to an MMEngine
config, then MMEngine's ``Runner``::

    train CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--no-validate] [--auto-scale-lr]
                 [--cfg-options KEY=VALUE ...] [--launcher none|pytorch|slurm|mpi]
    test  CONFIG CHECKPOINT [--work-dir DIR] [--out FILE] [--cfg-options ...] [--launcher ...]

``--cfg-options`` are merged first, so that the dedicated flags win over them (as the
toolboxes do). The Runner's checkpoint loads (``--resume``, ``load_from``) run inside
:func:`~micronet_backbones.openmmlab.checkpoint_compat.mmengine_checkpoints`, so checkpoints
MMEngine saved load under ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import os.path as osp
from collections.abc import Sequence

from mmengine.config import Config, DictAction

from .checkpoint_compat import mmengine_checkpoints

__all__ = [
    "apply_common_args",
    "apply_test_args",
    "apply_train_args",
    "load_config",
    "parse",
    "test_main",
    "test_parser",
    "train_main",
    "train_parser",
]

LAUNCHERS = ("none", "pytorch", "slurm", "mpi")


def _add_common(parser: argparse.ArgumentParser) -> None:
    """Flags of both tools: work dir, config overrides, launcher, local rank."""
    parser.add_argument("--work-dir", help="the dir to save logs, checkpoints and results")
    parser.add_argument(
        "--cfg-options",
        nargs="+",
        action=DictAction,
        help="override settings of the config, as key=value pairs (xxx=yyy)",
    )
    parser.add_argument("--launcher", choices=LAUNCHERS, default="none", help="job launcher")
    # torch.distributed.launch passes --local_rank (older) or --local-rank (newer).
    parser.add_argument("--local_rank", "--local-rank", type=int, default=0)


def train_parser(
    description: str = "Train a model with MMEngine's Runner",
) -> argparse.ArgumentParser:
    """The train tool's flags (MMPose's / MMSegmentation's / MMDetection's ``tools/train.py``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help="train config file path")
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
    _add_common(parser)
    return parser


def test_parser(
    description: str = "Evaluate a model with MMEngine's Runner",
) -> argparse.ArgumentParser:
    """The test tool's flags (config, checkpoint, ``--out`` for the metrics)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("config", help="test config file path")
    parser.add_argument("checkpoint", help="checkpoint file")
    parser.add_argument("--out", help="also dump the metrics to this file (json/yaml/pkl)")
    _add_common(parser)
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv`` and export ``LOCAL_RANK`` for MMEngine's launchers when unset."""
    args = parser.parse_args(None if argv is None else list(argv))
    os.environ.setdefault("LOCAL_RANK", str(args.local_rank))
    return args


def apply_common_args(cfg: Config, args: argparse.Namespace) -> Config:
    """``--cfg-options`` first, then launcher and work dir (default
    ``./work_dirs/<config name>``)."""
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get("work_dir") is None:
        cfg.work_dir = osp.join("./work_dirs", osp.splitext(osp.basename(args.config))[0])
    return cfg


def apply_train_args(cfg: Config, args: argparse.Namespace) -> Config:
    """The train flags applied to ``cfg`` (in place; returned), as the toolboxes' own tools do."""
    apply_common_args(cfg, args)
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


def apply_test_args(cfg: Config, args: argparse.Namespace) -> Config:
    """The test flags applied to ``cfg`` (in place; returned): the checkpoint is ``load_from``."""
    apply_common_args(cfg, args)
    cfg.load_from = args.checkpoint
    return cfg


def load_config(path: str, default_scope: str, imports: Sequence[str] = ()) -> Config:
    """Read an MMEngine config for a toolbox whose registry scope is ``default_scope``.

    ``imports`` are modules to import first (e.g. ``micronet_backbones.pose``, which registers
    MicroNet), for configs without ``custom_imports``. A config without ``default_scope`` gets
    ``default_scope``; one of another toolbox is an error naming both.
    """
    for name in imports:
        importlib.import_module(name)
    cfg = Config.fromfile(path)
    scope = cfg.get("default_scope")
    if scope is None:
        cfg.default_scope = default_scope
    elif scope != default_scope:
        raise ValueError(
            f"{path} is a config of {scope!r} (its default_scope), but this tool runs "
            f"{default_scope!r} configs"
        )
    return cfg


def train_main(
    argv: Sequence[str] | None = None,
    *,
    default_scope: str,
    imports: Sequence[str] = (),
    description: str = "Train a model with MMEngine's Runner",
):
    """Parse the train flags, build MMEngine's ``Runner`` from the config and train.

    Returns the trained model (``Runner.train()``'s result).
    """
    from mmengine.runner import Runner

    args = parse(train_parser(description), argv)
    cfg = apply_train_args(load_config(args.config, default_scope, imports), args)
    runner = Runner.from_cfg(cfg)
    with mmengine_checkpoints():  # --resume / load_from read MMEngine's own checkpoints
        return runner.train()


def test_main(
    argv: Sequence[str] | None = None,
    *,
    default_scope: str,
    imports: Sequence[str] = (),
    description: str = "Evaluate a model with MMEngine's Runner",
) -> dict:
    """Parse the test flags, build MMEngine's ``Runner`` and evaluate ``CHECKPOINT``.

    Returns the metrics (``Runner.test()``'s dict), also written to ``--out`` when given.
    """
    from mmengine.fileio import dump
    from mmengine.runner import Runner

    args = parse(test_parser(description), argv)
    cfg = apply_test_args(load_config(args.config, default_scope, imports), args)
    runner = Runner.from_cfg(cfg)
    with mmengine_checkpoints():
        metrics = runner.test()
    if args.out:
        dump(metrics, args.out)
    return metrics


# Not tests: pytest would collect these names when a test module imports them.
test_main.__test__ = test_parser.__test__ = False
