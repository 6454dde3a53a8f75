#!/usr/bin/env python
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

    # top-1 / top-5 of a checkpoint (ours or the authors' released one), resize 256, crop 224
    python tools/train_imagenet.py --arch micronet_m2 --data /data/imagenet --eval-only \\
        --weights micronet-m2.pth

Outputs in ``--output-dir``: ``last.pth`` (every epoch), ``best.pth`` (best validation top-1),
``log.jsonl`` (one JSON line per epoch: lr, train loss / top-1, val loss / top-1 / top-5) and,
for ``--eval-only``, ``eval.json``. The checkpoints load with
``micronet_backbones.create_model(arch, num_classes=N, pretrained="last.pth")``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

try:
    import micronet_backbones  # noqa: F401
except ImportError:  # a checkout that is not pip-installed: use the package beside tools/
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from micronet_backbones import create_model, get_spec, list_models, load_pretrained
from micronet_backbones.imagenet import (
    RECIPES,
    SmoothedCrossEntropy,
    WarmupCosine,
    evaluate,
    load_training_checkpoint,
    recipe_for,
    save_checkpoint,
    scaled_lr,
    setup_distributed,
    shutdown_distributed,
    train_one_epoch,
    train_transform,
    val_transform,
)
from micronet_backbones.imagenet.checkpoints import checkpoint_classes, plain
from micronet_backbones.imagenet.data import check_same_classes, image_folder, train_loader, val_loader
from micronet_backbones.imagenet.recipe import Recipe

DEFAULT = Recipe(weight_decay=0.0, warmup_epochs=0)  # the arch-independent defaults


def _per_arch(field: str) -> str:
    """'3e-05 for micronet_m0, ...' from the recipes, for the help text."""
    values: dict[str, list[str]] = {}
    for arch, recipe in RECIPES.items():
        values.setdefault(f"{getattr(recipe, field):g}", []).append(arch.replace("micronet_", "").upper())
    return ", ".join(f"{value} for {'/'.join(archs)}" for value, archs in values.items())


def _dropouts() -> str:
    """'0.05 for M0, ...' from the core's specs, for the help text."""
    return ", ".join(f"{get_spec(name).dropout:g} for {name.replace('micronet_', '').upper()}"
                     for name in list_models())


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
    data.add_argument("--data", type=Path, required=True,
                      help="folder holding train/ and val/, one sub-folder per class (required)")
    data.add_argument("--input-size", type=int, default=DEFAULT.input_size,
                      help="training crop and validation centre crop, pixels (default: %(default)s)")
    data.add_argument("--val-resize", type=int, default=DEFAULT.val_resize,
                      help="shorter side before the validation centre crop (default: %(default)s)")
    data.add_argument("--workers", type=int, default=8,
                      help="data loading processes per training process (default: %(default)s)")

    model = parser.add_argument_group("model")
    model.add_argument("--arch", required=True, choices=list_models(),
                       help=f"architecture, with the authors' classifier dropout ({_dropouts()}) "
                            "(required)")
    model.add_argument("--weights", type=Path, default=None,
                       help="checkpoint (ours or the authors') to evaluate with --eval-only, or to "
                            "start training from; its classifier must match the number of "
                            "classes (default: none, the authors' random initialisation)")

    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=DEFAULT.epochs,
                       help="training epochs (default: %(default)s)")
    optim.add_argument("--batch-size", type=int, default=DEFAULT.batch_size,
                       help="global batch size, summed over all processes; must divide by the "
                            "number of processes (default: %(default)s)")
    optim.add_argument("--lr", type=float, default=None,
                       help=f"peak learning rate (default: {DEFAULT.lr:g} x batch size / "
                            f"{DEFAULT.reference_batch_size}, i.e. {DEFAULT.lr:g} for "
                            f"{DEFAULT.reference_batch_size})")
    optim.add_argument("--momentum", type=float, default=DEFAULT.momentum,
                       help="SGD momentum (default: %(default)s)")
    optim.add_argument("--weight-decay", type=float, default=None,
                       help=f"SGD weight decay (default: per arch: {_per_arch('weight_decay')})")
    optim.add_argument("--warmup-epochs", type=int, default=None,
                       help="epochs of linear warm-up from 0 before the cosine decay to 0 "
                            f"(default: per arch: {_per_arch('warmup_epochs')})")
    optim.add_argument("--label-smoothing", type=float, default=DEFAULT.label_smoothing,
                       help="label smoothing, 0 to disable (default: %(default)s)")
    optim.add_argument("--mixup", type=float, default=DEFAULT.mixup,
                       help="mixup alpha, 0 to disable (default: %(default)s)")
    optim.add_argument("--mixup-ramp-epochs", type=int, default=DEFAULT.mixup_ramp_epochs,
                       help="epochs over which the mixup alpha grows linearly from 0 "
                            "(default: %(default)s)")

    run = parser.add_argument_group("run")
    run.add_argument("--output-dir", type=Path, default=None,
                     help="where checkpoints and logs go (default: runs/imagenet/<arch>)")
    run.add_argument("--resume", type=Path, default=None,
                     help="last.pth of an earlier run to continue from its next epoch "
                          "(default: none, start from epoch 1)")
    run.add_argument("--eval-only", action="store_true",
                     help="only report top-1 / top-5 of --weights on val/ (default: off)")
    run.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto",
                     help="cuda (NCCL) or cpu (gloo); auto picks CUDA when available "
                          "(default: %(default)s)")
    run.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True,
                     help="float16 mixed precision; applies on CUDA only, CPU runs in float32 "
                          "(default: on)")
    run.add_argument("--seed", type=int, default=0,
                     help="seed of initialisation, shuffling and augmentation (default: %(default)s)")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                     help="progress bar on the main process (tqdm if installed, else text lines) "
                          "(default: on)")
    run.add_argument("--print-freq", type=int, default=100,
                     help="iterations between text progress lines when no bar is shown "
                          "(default: %(default)s)")
    return parser


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
            problems.append(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    for name in ("workers", "warmup_epochs", "mixup_ramp_epochs", "mixup", "weight_decay", "momentum"):
        if getattr(args, name) < 0:
            problems.append(f"--{name.replace('_', '-')} must be >= 0, got {getattr(args, name)}")
    if args.lr is not None and args.lr <= 0:
        problems.append(f"--lr must be positive, got {args.lr}")
    if args.val_resize < args.input_size:
        problems.append(f"--val-resize ({args.val_resize}) is smaller than --input-size ({args.input_size})")
    if not 0 <= args.label_smoothing < 1:
        problems.append(f"--label-smoothing must be in [0, 1), got {args.label_smoothing}")
    if not args.eval_only and args.warmup_epochs >= args.epochs:
        problems.append(f"--warmup-epochs ({args.warmup_epochs}) must be below --epochs ({args.epochs})")
    if args.eval_only and args.weights is None:
        problems.append("--eval-only needs --weights (the checkpoint to evaluate)")
    if args.eval_only and args.resume is not None:
        problems.append("--eval-only and --resume do not go together; evaluate a checkpoint with --weights")
    if args.resume is not None and args.weights is not None:
        problems.append("--resume restores the weights itself; drop --weights")
    if problems:
        raise SystemExit("train_imagenet.py: error: " + "; ".join(problems))
    return args


def log(context, *parts) -> None:
    if context.is_main:
        print(*parts, flush=True)


def check_checkpoint_classes(path: Path, classes: list[str]) -> None:
    """Our checkpoints store their class folders; refuse one trained on other classes."""
    stored = checkpoint_classes(path)
    if stored is not None and stored != classes:
        raise SystemExit(
            f"train_imagenet.py: error: {path} was trained on {len(stored)} classes "
            f"({stored[:5]}...) that differ from the data's {len(classes)} ({classes[:5]}...)"
        )


def run_eval_only(args, context) -> dict:
    dataset = image_folder(args.data, "val", val_transform(args.input_size, args.val_resize))
    check_checkpoint_classes(args.weights, dataset.classes)
    model = create_model(args.arch, num_classes=len(dataset.classes), pretrained=args.weights)
    model.to(context.device)
    per_process = max(1, args.batch_size // context.world_size)
    loader = val_loader(dataset, per_process, context, workers=args.workers)
    metrics = evaluate(model, loader, context, amp=args.amp, progress_bar=args.progress,
                       print_every=args.print_freq)
    log(context, f"{args.arch} {args.weights}: top-1 {metrics['top1']:.2f} top-5 {metrics['top5']:.2f} "
                 f"(val loss {metrics['loss']:.4f}, {metrics['samples']} images, "
                 f"resize {args.val_resize} centre crop {args.input_size})")
    if context.is_main:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        result = {"arch": args.arch, "weights": str(args.weights), **metrics}
        (args.output_dir / "eval.json").write_text(json.dumps(result, indent=2) + "\n")
    return metrics


def run_training(args, context) -> dict:
    if args.resume is None and (args.output_dir / "last.pth").exists():
        raise SystemExit(
            f"train_imagenet.py: error: {args.output_dir} already holds a run; continue it with "
            f"--resume {args.output_dir / 'last.pth'} or pick another --output-dir"
        )
    train_set = image_folder(args.data, "train", train_transform(args.input_size))
    val_set = image_folder(args.data, "val", val_transform(args.input_size, args.val_resize))
    check_same_classes(train_set, val_set)
    classes = train_set.classes
    if args.batch_size % context.world_size:
        raise SystemExit(
            f"train_imagenet.py: error: --batch-size {args.batch_size} does not divide by "
            f"{context.world_size} processes"
        )
    per_process = args.batch_size // context.world_size
    train_batches = train_loader(train_set, per_process, context, workers=args.workers, seed=args.seed)
    val_batches = val_loader(val_set, per_process, context, workers=args.workers)
    iters_per_epoch = len(train_batches)
    if iters_per_epoch == 0:
        raise SystemExit(
            f"train_imagenet.py: error: {len(train_set)} training images give no full batch of "
            f"{per_process} per process; lower --batch-size"
        )

    torch.manual_seed(args.seed)  # same initialisation on every process (DDP also broadcasts it)
    model = create_model(args.arch, num_classes=len(classes))
    if args.weights is not None:
        check_checkpoint_classes(args.weights, classes)
        load_pretrained(model, args.weights)
    model.to(context.device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                                weight_decay=args.weight_decay)
    use_amp = args.amp and context.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    schedule = WarmupCosine(args.lr, args.epochs * iters_per_epoch, args.warmup_epochs * iters_per_epoch)
    criterion = SmoothedCrossEntropy(args.label_smoothing)

    start_epoch, best_top1 = 0, float("-inf")
    if args.resume is not None:
        state = load_training_checkpoint(args.resume)
        if state["arch"] != args.arch:
            raise SystemExit(f"train_imagenet.py: error: {args.resume} is a {state['arch']}, not a {args.arch}")
        if list(state["classes"]) != classes:
            raise SystemExit(f"train_imagenet.py: error: {args.resume} was trained on other classes than {args.data}")
        start_epoch, best_top1 = int(state["epoch"]), float(state["best_top1"])
        if start_epoch >= args.epochs:
            raise SystemExit(
                f"train_imagenet.py: error: {args.resume} has finished {start_epoch} epochs already; "
                f"pass --epochs above {start_epoch} to train on"
            )
        load_pretrained(model, state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        if state["scaler"]:  # empty when the run was on CPU (no mixed precision)
            scaler.load_state_dict(state["scaler"])
        log(context, f"resumed {args.resume}: {start_epoch} epochs done, continuing at epoch "
                     f"{start_epoch + 1} of {args.epochs}")
        if state["scheduler"] != schedule.state_dict():
            log(context, f"note: the learning-rate schedule is now {schedule.state_dict()}; the "
                         f"checkpoint's run had {state['scheduler']}")

    if context.distributed:
        device_ids = [context.local_rank] if context.device.type == "cuda" else None
        trained = DistributedDataParallel(model, device_ids=device_ids)
    else:
        trained = model
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    log(context,
        f"{args.arch}: {len(train_set)} train / {len(val_set)} val images, {len(classes)} classes; "
        f"{context.world_size} process(es) on {context.device.type} ({context.backend or 'no process group'}), "
        f"mixed precision {'on' if use_amp else 'off'}; batch {args.batch_size} ({per_process} per process), "
        f"{iters_per_epoch} iterations per epoch; SGD lr {args.lr:g} momentum {args.momentum:g} "
        f"weight decay {args.weight_decay:g}, warm-up {args.warmup_epochs} epochs then cosine over "
        f"{args.epochs} epochs; label smoothing {args.label_smoothing:g}, mixup {args.mixup:g}")

    args.output_dir.mkdir(parents=True, exist_ok=True)
    if args.resume is None and context.is_main:
        (args.output_dir / "log.jsonl").unlink(missing_ok=True)  # a run that never finished an epoch
    metrics = {}
    for epoch in range(start_epoch, args.epochs):
        started = time.time()
        torch.manual_seed(args.seed + 1 + epoch * context.world_size + context.rank)
        train_batches.sampler.set_epoch(epoch)
        ramp = min(1.0, epoch / args.mixup_ramp_epochs) if args.mixup_ramp_epochs else 1.0
        description = f"epoch {epoch + 1}/{args.epochs}"
        train_metrics = train_one_epoch(
            trained, train_batches, optimizer, criterion, schedule, scaler, context,
            first_iteration=epoch * iters_per_epoch, amp=use_amp, mixup_alpha=args.mixup * ramp,
            description=description, progress_bar=args.progress, print_every=args.print_freq,
        )
        val_metrics = evaluate(model, val_batches, context, amp=use_amp,
                               description=f"{description} val", progress_bar=args.progress,
                               print_every=args.print_freq)
        best_top1 = max(best_top1, val_metrics["top1"])
        metrics = {
            "epoch": epoch + 1,
            "lr": train_metrics["lr"],
            "train_loss": train_metrics["loss"],
            "train_top1": train_metrics["top1"],
            "val_loss": val_metrics["loss"],
            "val_top1": val_metrics["top1"],
            "val_top5": val_metrics["top5"],
            "best_top1": best_top1,
            "seconds": time.time() - started,
        }
        log(context, f"epoch {epoch + 1}/{args.epochs}: lr {metrics['lr']:.5g} "
                     f"train loss {metrics['train_loss']:.4f} top-1 {metrics['train_top1']:.2f} | "
                     f"val loss {metrics['val_loss']:.4f} top-1 {metrics['val_top1']:.2f} "
                     f"top-5 {metrics['val_top5']:.2f} | {metrics['seconds']:.0f}s")
        if context.is_main:
            save_checkpoint(args.output_dir / "last.pth", {
                "arch": args.arch,
                "state_dict": model.state_dict(),
                "classes": list(classes),
                "epoch": epoch + 1,
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict(),
                "scheduler": schedule.state_dict(),
                "best_top1": best_top1,
                "metrics": metrics,
                "args": plain(vars(args)),
            })
            if val_metrics["top1"] >= best_top1:
                shutil.copyfile(args.output_dir / "last.pth", args.output_dir / "best.pth")
            with open(args.output_dir / "log.jsonl", "a") as log_file:
                log_file.write(json.dumps(metrics) + "\n")
    return metrics


def main(argv: list[str] | None = None) -> dict:
    args = resolve_options(build_parser().parse_args(argv))
    context = setup_distributed(args.device)
    try:
        if args.eval_only:
            return run_eval_only(args, context)
        return run_training(args, context)
    finally:
        shutdown_distributed(context)


if __name__ == "__main__":
    main()
