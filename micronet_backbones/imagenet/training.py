"""A training run of ``tools/train_imagenet.py``: data, networks, resume, epochs, checkpoints.

:func:`run_training` trains the MicroNet alone, or with ``--mutual-learning`` together with its
full-rank partner (:mod:`.mutual`). The MicroNet is always member 0: its weights are the
checkpoint's ``state_dict`` (what ``create_model(..., pretrained=...)`` and the adapters read)
and its validation top-1 picks ``best.pth``; the partner's weights and optimizer live in the
checkpoint's ``"partner"`` entry, which only ``--resume`` reads.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from dataclasses import dataclass
from typing import NoReturn

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder

from ..checkpoint import load_pretrained
from ..full_rank import full_rank_partner
from ..registry import create_model
from .checkpoints import checkpoint_classes, load_training_checkpoint, plain, save_checkpoint
from .data import check_same_classes, image_folder, train_loader, val_loader
from .distributed import DistributedContext, broadcast_buffers
from .engine import Member, evaluate, train_one_epoch
from .losses import SmoothedCrossEntropy
from .mutual import MutualLearning
from .schedule import WarmupCosine
from .transforms import train_transform, val_transform

__all__ = ["PARTNER", "TrainingData", "fail", "check_checkpoint_classes", "run_training"]

PARTNER = "partner"  # the partner's name in logs (``partner_val_top1``, ...) and checkpoints


def fail(message: str) -> NoReturn:
    """Stop the tool with ``train_imagenet.py: error: <message>`` (exit status 1)."""
    raise SystemExit(f"train_imagenet.py: error: {message}")


def log(context: DistributedContext, *parts) -> None:
    """Print on the main process only."""
    if context.is_main:
        print(*parts, flush=True)


def check_checkpoint_classes(path, classes: list[str]) -> None:
    """Our checkpoints store their class folders; refuse one trained on other classes."""
    stored = checkpoint_classes(path)
    if stored is not None and stored != classes:
        fail(
            f"{path} was trained on {len(stored)} classes ({stored[:5]}...) that differ from "
            f"the data's {len(classes)} ({classes[:5]}...)"
        )


@dataclass
class TrainingData:
    """Both splits and their per-process loaders (``per_process`` images per batch)."""

    train_set: ImageFolder
    val_set: ImageFolder
    per_process: int
    train_batches: DataLoader
    val_batches: DataLoader

    @property
    def classes(self) -> list[str]:
        return self.train_set.classes

    @property
    def iters_per_epoch(self) -> int:
        return len(self.train_batches)


def load_data(args: argparse.Namespace, context: DistributedContext) -> TrainingData:
    """``train/`` and ``val/`` of ``args.data`` with their transforms and loaders."""
    train_set = image_folder(args.data, "train", train_transform(args.input_size))
    val_set = image_folder(args.data, "val", val_transform(args.input_size, args.val_resize))
    check_same_classes(train_set, val_set)
    if args.batch_size % context.world_size:
        fail(f"--batch-size {args.batch_size} does not divide by {context.world_size} processes")
    per_process = args.batch_size // context.world_size
    data = TrainingData(
        train_set,
        val_set,
        per_process,
        train_loader(train_set, per_process, context, workers=args.workers, seed=args.seed),
        val_loader(val_set, per_process, context, workers=args.workers),
    )
    if data.iters_per_epoch == 0:
        fail(
            f"{len(train_set)} training images give no full batch of {per_process} per process; "
            "lower --batch-size"
        )
    return data


def build_members(
    args: argparse.Namespace, context: DistributedContext, classes: list[str]
) -> list[Member]:
    """The MicroNet (from ``--weights`` if given) and, with ``--mutual-learning``, its full-rank
    partner, each with its SGD optimizer, on the device; not yet wrapped for DDP."""
    torch.manual_seed(args.seed)  # same initialisation on every process (DDP also broadcasts it)
    models = [("", create_model(args.arch, num_classes=len(classes)))]
    if args.weights is not None:
        check_checkpoint_classes(args.weights, classes)
        load_pretrained(models[0][1], args.weights)
    if args.mutual_learning:
        models.append((PARTNER, full_rank_partner(args.arch, num_classes=len(classes))))
    members = []
    for name, model in models:
        model.to(context.device)
        optimizer = torch.optim.SGD(
            model.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay
        )
        members.append(Member(name, model, model, optimizer))
    return members


def restore(
    args: argparse.Namespace,
    context: DistributedContext,
    members: list[Member],
    scaler: torch.amp.GradScaler,
    schedule: WarmupCosine,
    classes: list[str],
) -> tuple[int, float]:
    """Load ``--resume`` into every member and the scaler; returns (epochs done, best top-1)."""
    state = load_training_checkpoint(args.resume)
    if state["arch"] != args.arch:
        fail(f"{args.resume} is a {state['arch']}, not a {args.arch}")
    if list(state["classes"]) != classes:
        fail(f"{args.resume} was trained on other classes than {args.data}")
    start_epoch, best_top1 = int(state["epoch"]), float(state["best_top1"])
    if start_epoch >= args.epochs:
        fail(
            f"{args.resume} has finished {start_epoch} epochs already; pass --epochs above "
            f"{start_epoch} to train on"
        )
    if args.mutual_learning and PARTNER not in state:
        fail(
            f"{args.resume} was trained without --mutual-learning, so it holds no partner to "
            "continue with; drop --mutual-learning (or start a new run from it with --weights)"
        )
    if not args.mutual_learning and PARTNER in state:
        fail(f"{args.resume} was trained with --mutual-learning; pass it again to continue")
    micronet = members[0]
    load_pretrained(micronet.model, state["state_dict"])
    micronet.optimizer.load_state_dict(state["optimizer"])
    for member in members[1:]:
        member.model.load_state_dict(state[member.name]["state_dict"])
        member.optimizer.load_state_dict(state[member.name]["optimizer"])
    if state["scaler"]:  # empty when the run was on CPU (no mixed precision)
        scaler.load_state_dict(state["scaler"])
    log(
        context,
        f"resumed {args.resume}: {start_epoch} epochs done, continuing at epoch "
        f"{start_epoch + 1} of {args.epochs}",
    )
    if state["scheduler"] != schedule.state_dict():
        log(
            context,
            f"note: the learning-rate schedule is now {schedule.state_dict()}; the "
            f"checkpoint's run had {state['scheduler']}",
        )
    return start_epoch, best_top1


def wrap_for_ddp(members: list[Member], context: DistributedContext) -> None:
    """Each member's ``trained`` becomes a ``DistributedDataParallel`` wrapper when distributed."""
    if not context.distributed:
        return
    device_ids = [context.local_rank] if context.device.type == "cuda" else None
    for member in members:
        member.trained = DistributedDataParallel(member.model, device_ids=device_ids)


def training_state(
    args: argparse.Namespace,
    members: list[Member],
    scaler: torch.amp.GradScaler,
    schedule: WarmupCosine,
    classes: list[str],
    epoch: int,
    best_top1: float,
    metrics: dict,
) -> dict:
    """The checkpoint of the run after ``epoch`` epochs (see :mod:`.checkpoints`)."""
    micronet = members[0]
    state = {
        "arch": args.arch,
        "state_dict": micronet.model.state_dict(),
        "classes": list(classes),
        "epoch": epoch,
        "optimizer": micronet.optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "scheduler": schedule.state_dict(),
        "best_top1": best_top1,
        "metrics": metrics,
        "args": plain(vars(args)),
    }
    for member in members[1:]:
        state[member.name] = {
            "state_dict": member.model.state_dict(),
            "optimizer": member.optimizer.state_dict(),
        }
    return state


def epoch_record(
    epoch: int, train: dict, val: dict[str, dict], best_top1: float, mutual: bool
) -> dict:
    """One line of ``log.jsonl``: the MicroNet's figures unprefixed, the partner's prefixed
    ``partner_``; with mutual learning each network's CE and KL term besides its loss."""
    record = {"epoch": epoch, "lr": train["lr"]}
    for name, figures in val.items():
        prefix = f"{name}_" if name else ""
        record[f"{prefix}train_loss"] = train[name]["loss"]
        if mutual:
            record[f"{prefix}train_ce"] = train[name]["ce"]
            record[f"{prefix}train_kl"] = train[name]["kl"]
        record[f"{prefix}train_top1"] = train[name]["top1"]
        record[f"{prefix}val_loss"] = figures["loss"]
        record[f"{prefix}val_top1"] = figures["top1"]
        record[f"{prefix}val_top5"] = figures["top5"]
    record["best_top1"] = best_top1
    return record


def _summary(record: dict, args: argparse.Namespace) -> str:
    """The epoch's line on the console."""
    text = (
        f"epoch {record['epoch']}/{args.epochs}: lr {record['lr']:.5g} "
        f"train loss {record['train_loss']:.4f} top-1 {record['train_top1']:.2f} | "
        f"val loss {record['val_loss']:.4f} top-1 {record['val_top1']:.2f} "
        f"top-5 {record['val_top5']:.2f}"
    )
    if args.mutual_learning:
        text += (
            f" | KL {record['train_kl']:.4f}; partner: train CE {record['partner_train_ce']:.4f} "
            f"KL {record['partner_train_kl']:.4f}, val top-1 {record['partner_val_top1']:.2f}"
        )
    return f"{text} | {record['seconds']:.0f}s"


def run_training(args: argparse.Namespace, context: DistributedContext) -> dict:
    """Train (or continue with ``--resume``) as ``args`` say; returns the last epoch's record."""
    if args.resume is None and (args.output_dir / "last.pth").exists():
        fail(
            f"{args.output_dir} already holds a run; continue it with --resume "
            f"{args.output_dir / 'last.pth'} or pick another --output-dir"
        )
    data = load_data(args, context)
    members = build_members(args, context, data.classes)
    use_amp = args.amp and context.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    iters = data.iters_per_epoch
    schedule = WarmupCosine(args.lr, args.epochs * iters, args.warmup_epochs * iters)
    criterion = SmoothedCrossEntropy(args.label_smoothing)
    mutual = (
        MutualLearning(args.mutual_weight, args.mutual_temperature)
        if args.mutual_learning
        else None
    )

    start_epoch, best_top1 = 0, float("-inf")
    if args.resume is not None:
        start_epoch, best_top1 = restore(args, context, members, scaler, schedule, data.classes)
    wrap_for_ddp(members, context)
    if context.device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    partner = (
        f"; mutual learning with the full-rank partner (weight {args.mutual_weight:g}, "
        f"temperature {args.mutual_temperature:g})"
        if mutual
        else ""
    )
    log(
        context,
        f"{args.arch}: {len(data.train_set)} train / {len(data.val_set)} val images, "
        f"{len(data.classes)} classes; {context.world_size} process(es) on {context.device.type} "
        f"({context.backend or 'no process group'}), mixed precision {'on' if use_amp else 'off'}; "
        f"batch {args.batch_size} ({data.per_process} per process), {iters} iterations per epoch; "
        f"SGD lr {args.lr:g} momentum {args.momentum:g} weight decay {args.weight_decay:g}, "
        f"warm-up {args.warmup_epochs} epochs then cosine over {args.epochs} epochs; "
        f"label smoothing {args.label_smoothing:g}, mixup {args.mixup:g}{partner}",
    )

    args.output_dir.mkdir(parents=True, exist_ok=True)
    if args.resume is None and context.is_main:
        (args.output_dir / "log.jsonl").unlink(
            missing_ok=True
        )  # a run that never finished an epoch
    stop = (
        args.epochs
        if args.stop_after_epochs is None
        else min(args.epochs, start_epoch + args.stop_after_epochs)
    )
    record = {}
    for epoch in range(start_epoch, stop):
        started = time.time()
        torch.manual_seed(args.seed + 1 + epoch * context.world_size + context.rank)
        data.train_batches.sampler.set_epoch(epoch)
        ramp = min(1.0, epoch / args.mixup_ramp_epochs) if args.mixup_ramp_epochs else 1.0
        description = f"epoch {epoch + 1}/{args.epochs}"
        train = train_one_epoch(
            members,
            data.train_batches,
            criterion,
            schedule,
            scaler,
            context,
            first_iteration=epoch * iters,
            amp=use_amp,
            mixup_alpha=args.mixup * ramp,
            mutual=mutual,
            description=description,
            progress_bar=args.progress,
            print_every=args.print_freq,
        )
        for member in members:  # evaluate (and save) rank 0's BatchNorm statistics everywhere
            broadcast_buffers(member.model, context)
        val = {
            member.name: evaluate(
                member.model,
                data.val_batches,
                context,
                amp=use_amp,
                description=f"{description} val {member.name}".rstrip(),
                progress_bar=args.progress,
                print_every=args.print_freq,
            )
            for member in members
        }
        best_top1 = max(best_top1, val[""]["top1"])
        record = epoch_record(epoch + 1, train, val, best_top1, mutual is not None)
        record["seconds"] = time.time() - started
        log(context, _summary(record, args))
        if context.is_main:
            save_checkpoint(
                args.output_dir / "last.pth",
                training_state(
                    args, members, scaler, schedule, data.classes, epoch + 1, best_top1, record
                ),
            )
            if val[""]["top1"] >= best_top1:
                shutil.copyfile(args.output_dir / "last.pth", args.output_dir / "best.pth")
            with open(args.output_dir / "log.jsonl", "a") as log_file:
                log_file.write(json.dumps(record) + "\n")
    if stop < args.epochs:
        log(
            context,
            f"stopped after epoch {stop} of {args.epochs} (--stop-after-epochs); "
            f"continue with --resume {args.output_dir / 'last.pth'}",
        )
    return record
