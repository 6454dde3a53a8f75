"""Train or evaluate a MicroNet on ImageNet (or any folder in its layout), on any number of
GPUs and machines with ``torchrun``, or on CPUs with gloo.

Data layout: ``DATA/train/<class>/<image>`` and ``DATA/val/<class>/<image>`` (one sub-folder per
class, e.g. the WordNet ids of ImageNet; ``--eval-only`` needs ``val/`` only).

Examples::

    # the authors' recipe for M1 on 8 GPUs of one machine (global batch 512, lr 0.2)
    torchrun --nproc_per_node 8 tools/train_imagenet.py --arch micronet_m1 --data /data/imagenet

    # two machines of 8 GPUs (run on each, with its --node_rank)
    torchrun --nnodes 2 --node_rank 0 --nproc_per_node 8 --master_addr HOST --master_port 29500 \\
        tools/train_imagenet.py --arch micronet_m3 --data /data/imagenet

    # continue after an interruption
    torchrun --nproc_per_node 8 tools/train_imagenet.py --arch micronet_m1 --data /data/imagenet \\
        --resume runs/imagenet/micronet_m1/last.pth

    # mutual learning with the full-rank partner (Deep Mutual Learning: weight 1, T = 1)
    torchrun --nproc_per_node 8 tools/train_imagenet.py --arch micronet_m1 --data /data/imagenet \\
        --mutual-learning

    # top-1 / top-5 of a checkpoint (ours or the authors' released one), resize 256, crop 224
    python tools/train_imagenet.py --arch micronet_m2 --data /data/imagenet --eval-only \\
        --weights micronet-m2.pth

Outputs in ``--output-dir``: ``last.pth`` (every epoch), ``best.pth`` (best validation top-1),
``log.jsonl`` (one JSON line per epoch: lr, train loss / top-1, val loss / top-1 / top-5; with
``--mutual-learning`` also each network's CE and KL term and the partner's figures, prefixed
``partner_``) and, for ``--eval-only``, ``eval.json``. The checkpoints load with
``micronet_backbones.create_model(arch, num_classes=N, pretrained="last.pth")`` (the MicroNet;
the partner of a mutual-learning run is kept for ``--resume`` only).

This module is the command line of ``tools/train_imagenet.py``; :mod:`.training` runs it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..registry import canonical_name, create_model, get_spec, list_models
from .data import image_folder, val_loader
from .distributed import DistributedContext, setup_distributed, shutdown_distributed
from .engine import evaluate
from .mutual import MutualLearning
from .recipe import RECIPES, Recipe, recipe_for, scaled_lr
from .training import check_checkpoint_classes, fail, log, run_training
from .transforms import val_transform

__all__ = ["build_parser", "main", "resolve_options", "run_eval_only"]

DEFAULT = Recipe(weight_decay=0.0, warmup_epochs=0)  # the arch-independent defaults


def _per_arch(field: str) -> str:
    """'3e-05 for micronet_m0, ...' from the recipes, for the help text."""
    values: dict[str, list[str]] = {}
    for arch, recipe in RECIPES.items():
        values.setdefault(f"{getattr(recipe, field):g}", []).append(
            arch.replace("micronet_", "").upper()
        )
    return ", ".join(f"{value} for {'/'.join(archs)}" for value, archs in values.items())


def _dropouts() -> str:
    """'0.05 for M0, ...' from the core's specs, for the help text."""
    return ", ".join(
        f"{get_spec(name).dropout:g} for {name.replace('micronet_', '').upper()}"
        for name in list_models()
    )


def _arch(name: str) -> str:
    """``--arch`` through the registry's one spelling rule (``m3`` = ``micronet_m3``)."""
    try:
        return canonical_name(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_imagenet.py",
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        epilog=(
            "Defaults are the authors' recipe (liyunsheng13/micronet: main.py and "
            "script/train_micronet_m*_4gpu.sh; see micronet_backbones/imagenet/recipe.py). "
            "Launch with torchrun for several processes (NCCL on GPUs, gloo on CPUs); "
            "a plain python launch runs one process."
        ),
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        type=Path,
        required=True,
        help="folder holding train/ and val/, one sub-folder per class (required)",
    )
    data.add_argument(
        "--input-size",
        type=int,
        default=DEFAULT.input_size,
        help="training crop and validation centre crop, pixels (default: %(default)s)",
    )
    data.add_argument(
        "--val-resize",
        type=int,
        default=DEFAULT.val_resize,
        help="shorter side before the validation centre crop (default: %(default)s)",
    )
    data.add_argument(
        "--workers",
        type=int,
        default=8,
        help="data loading processes per training process (default: %(default)s)",
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--arch",
        required=True,
        type=_arch,
        metavar="ARCH",
        help=f"architecture: {', '.join(list_models())} (or m0 ... m3), with the "
        f"authors' classifier dropout ({_dropouts()}) (required)",
    )
    model.add_argument(
        "--weights",
        type=Path,
        default=None,
        help="checkpoint (ours or the authors') to evaluate with --eval-only, or to "
        "start training from; its classifier must match the number of "
        "classes (default: none, the authors' random initialisation)",
    )

    optim = parser.add_argument_group("optimisation")
    optim.add_argument(
        "--epochs", type=int, default=DEFAULT.epochs, help="training epochs (default: %(default)s)"
    )
    optim.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT.batch_size,
        help="global batch size, summed over all processes; must divide by the "
        "number of processes (default: %(default)s)",
    )
    optim.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"peak learning rate (default: {DEFAULT.lr:g} x batch size / "
        f"{DEFAULT.reference_batch_size}, i.e. {DEFAULT.lr:g} for "
        f"{DEFAULT.reference_batch_size})",
    )
    optim.add_argument(
        "--momentum",
        type=float,
        default=DEFAULT.momentum,
        help="SGD momentum (default: %(default)s)",
    )
    optim.add_argument(
        "--weight-decay",
        type=float,
        default=None,
        help=f"SGD weight decay (default: per arch: {_per_arch('weight_decay')})",
    )
    optim.add_argument(
        "--warmup-epochs",
        type=int,
        default=None,
        help="epochs of linear warm-up from 0 before the cosine decay to 0 "
        f"(default: per arch: {_per_arch('warmup_epochs')})",
    )
    optim.add_argument(
        "--label-smoothing",
        type=float,
        default=DEFAULT.label_smoothing,
        help="label smoothing, 0 to disable (default: %(default)s)",
    )
    optim.add_argument(
        "--mixup",
        type=float,
        default=DEFAULT.mixup,
        help="mixup alpha, 0 to disable (default: %(default)s)",
    )
    optim.add_argument(
        "--mixup-ramp-epochs",
        type=int,
        default=DEFAULT.mixup_ramp_epochs,
        help="epochs over which the mixup alpha grows linearly from 0 (default: %(default)s)",
    )

    mutual = parser.add_argument_group(
        "mutual learning",
        "train the MicroNet together with its full-rank partner (dense 1x1 and k x k depthwise "
        "convolutions, see micronet_backbones/full_rank.py), each with cross-entropy plus "
        "weight x T^2 x KL towards the other's detached prediction (Deep Mutual Learning)",
    )
    mutual.add_argument(
        "--mutual-learning",
        action="store_true",
        help="train with the full-rank partner; checkpoints still hold the "
        "MicroNet, the partner only for --resume (default: off)",
    )
    mutual.add_argument(
        "--mutual-weight",
        type=float,
        default=None,
        help=f"weight of the KL term in each network's loss "
        f"(default: {MutualLearning().weight:g}, as Deep Mutual Learning)",
    )
    mutual.add_argument(
        "--mutual-temperature",
        type=float,
        default=None,
        help=f"softmax temperature T of the KL term, scaled by T^2 "
        f"(default: {MutualLearning().temperature:g}, as Deep Mutual Learning)",
    )

    run = parser.add_argument_group("run")
    run.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where checkpoints and logs go (default: runs/imagenet/<arch>)",
    )
    run.add_argument(
        "--resume",
        type=Path,
        default=None,
        help="last.pth of an earlier run to continue from its next epoch "
        "(default: none, start from epoch 1)",
    )
    run.add_argument(
        "--stop-after-epochs",
        type=int,
        default=None,
        help="end this invocation after that many epochs (checkpoint written; "
        "the schedule still spans --epochs; continue with --resume), e.g. for "
        "jobs under a time limit (default: train to --epochs)",
    )
    run.add_argument(
        "--eval-only",
        action="store_true",
        help="only report top-1 / top-5 of --weights on val/ (default: off)",
    )
    run.add_argument(
        "--device",
        choices=("auto", "cuda", "cpu"),
        default="auto",
        help="cuda (NCCL) or cpu (gloo); auto picks CUDA when available (default: %(default)s)",
    )
    run.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="float16 mixed precision; applies on CUDA only, CPU runs in float32 (default: on)",
    )
    run.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of initialisation, shuffling and augmentation (default: %(default)s)",
    )
    run.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="progress bar on the main process (tqdm if installed, else text lines) (default: on)",
    )
    run.add_argument(
        "--print-freq",
        type=int,
        default=100,
        help="iterations between text progress lines when no bar is shown (default: %(default)s)",
    )
    return parser


def _mutual_problems(args: argparse.Namespace) -> list[str]:
    """Fill the mutual-learning defaults; what is wrong with those options."""
    given = [
        f"--mutual-{name}"
        for name in ("weight", "temperature")
        if getattr(args, f"mutual_{name}") is not None
    ]
    if given and not args.mutual_learning:
        return [f"{' and '.join(given)} only apply with --mutual-learning"]
    if args.mutual_learning and args.eval_only:
        return [
            "--mutual-learning is a training option; --eval-only evaluates the MicroNet of "
            "--weights without it"
        ]
    defaults = MutualLearning()
    if args.mutual_weight is None:
        args.mutual_weight = defaults.weight
    if args.mutual_temperature is None:
        args.mutual_temperature = defaults.temperature
    problems = []
    if args.mutual_weight < 0:
        problems.append(f"--mutual-weight must be >= 0, got {args.mutual_weight}")
    if args.mutual_temperature <= 0:
        problems.append(f"--mutual-temperature must be positive, got {args.mutual_temperature}")
    return problems


def resolve_options(args: argparse.Namespace) -> argparse.Namespace:
    """Fill the per-arch defaults (weight decay, warm-up, lr) and check every number."""
    recipe = recipe_for(args.arch)
    if args.weight_decay is None:
        args.weight_decay = recipe.weight_decay
    if args.warmup_epochs is None:
        args.warmup_epochs = recipe.warmup_epochs
    if args.lr is None and args.batch_size > 0:
        args.lr = scaled_lr(recipe, args.batch_size)
    if args.output_dir is None:
        args.output_dir = Path("runs") / "imagenet" / args.arch

    problems = []
    for name in ("input_size", "val_resize", "epochs", "batch_size", "print_freq"):
        if getattr(args, name) <= 0:
            problems.append(
                f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}"
            )
    for name in (
        "workers",
        "warmup_epochs",
        "mixup_ramp_epochs",
        "mixup",
        "weight_decay",
        "momentum",
    ):
        if getattr(args, name) < 0:
            problems.append(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.lr is not None and args.lr <= 0:
        problems.append(f"--lr must be positive, got {args.lr}")
    if args.val_resize < args.input_size:
        problems.append(
            f"--val-resize ({args.val_resize}) is smaller than --input-size ({args.input_size})"
        )
    if not 0 <= args.label_smoothing < 1:
        problems.append(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    if not args.eval_only and args.warmup_epochs >= args.epochs:
        problems.append(
            f"--warmup-epochs ({args.warmup_epochs}) must be below --epochs ({args.epochs})"
        )
    if args.eval_only and args.weights is None:
        problems.append("--eval-only needs --weights (the checkpoint to evaluate)")
    if args.eval_only and args.resume is not None:
        problems.append(
            "--eval-only and --resume do not go together; evaluate a checkpoint with --weights"
        )
    if args.resume is not None and args.weights is not None:
        problems.append("--resume restores the weights itself; drop --weights")
    if args.stop_after_epochs is not None and args.stop_after_epochs <= 0:
        problems.append(f"--stop-after-epochs must be positive, got {args.stop_after_epochs}")
    problems += _mutual_problems(args)
    if problems:
        fail("; ".join(problems))
    return args


def run_eval_only(args: argparse.Namespace, context: DistributedContext) -> dict:
    """Top-1 / top-5 of ``--weights`` (the MicroNet) on ``val/``; writes ``eval.json``."""
    dataset = image_folder(args.data, "val", val_transform(args.input_size, args.val_resize))
    check_checkpoint_classes(args.weights, dataset.classes)
    model = create_model(args.arch, num_classes=len(dataset.classes), pretrained=args.weights)
    model.to(context.device)
    per_process = max(1, args.batch_size // context.world_size)
    loader = val_loader(dataset, per_process, context, workers=args.workers)
    metrics = evaluate(
        model,
        loader,
        context,
        amp=args.amp,
        progress_bar=args.progress,
        print_every=args.print_freq,
    )
    log(
        context,
        f"{args.arch} {args.weights}: top-1 {metrics['top1']:.2f} top-5 {metrics['top5']:.2f} "
        f"(val loss {metrics['loss']:.4f}, {metrics['samples']} images, "
        f"resize {args.val_resize} centre crop {args.input_size})",
    )
    if context.is_main:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        result = {"arch": args.arch, "weights": str(args.weights), **metrics}
        (args.output_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    """Run the tool with ``argv`` (default: the command line); returns the last figures."""
    args = resolve_options(build_parser().parse_args(argv))
    context = setup_distributed(args.device)
    try:
        if args.eval_only:
            return run_eval_only(args, context)
        return run_training(args, context)
    finally:
        shutdown_distributed(context)
