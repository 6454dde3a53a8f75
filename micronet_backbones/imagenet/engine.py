"""One training epoch and one (exact, sharded) evaluation pass."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .distributed import DistributedContext, all_reduce_sum
from .losses import mixup_batch
from .progress import Progress
from .schedule import WarmupCosine

__all__ = ["topk_correct", "train_one_epoch", "evaluate"]


def topk_correct(logits: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1, 5)) -> list[torch.Tensor]:
    """How many samples have their target among the ``k`` highest logits, for each ``k``.

    ``k`` is capped at the number of classes (top-5 of a 4-class problem is top-4 = 100 %).

    Shapes: logits (N, C), target (N,) -> one 0-d float tensor per ``k``.
    """
    max_k = min(max(topk), logits.shape[1])
    predicted = logits.topk(max_k, dim=1).indices  # (N, max_k)
    hits = predicted.eq(target.unsqueeze(1))  # (N, max_k)
    return [hits[:, : min(k, max_k)].any(dim=1).sum().float() for k in topk]


def _autocast(device: torch.device, enabled: bool):
    """float16 autocast on CUDA when ``enabled``; nothing on CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return nullcontext()


def train_one_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    schedule: WarmupCosine,
    scaler: torch.amp.GradScaler,
    context: DistributedContext,
    *,
    first_iteration: int,
    amp: bool,
    mixup_alpha: float = 0.0,
    description: str = "train",
    progress_bar: bool = True,
    print_every: int = 100,
) -> dict[str, float]:
    """Train ``model`` (DDP-wrapped when distributed) for one pass over ``loader``.

    The lr of every step comes from ``schedule`` at global iteration ``first_iteration + step``.
    With mixup, loss and accuracy are the ``lam``-weighted mix of both targets (as the authors
    report them).

    Returns the averages over every process: ``loss``, ``top1``, ``top5`` (percent), ``lr`` (of
    the last step), ``iterations`` (steps taken by each process) and ``samples`` (all processes).
    """
    model.train()
    device = context.device
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top1, top5, samples
    lr = schedule.lr(first_iteration)
    steps = 0
    progress = Progress(loader, len(loader), description, context.is_main, progress_bar, print_every)
    for step, (images, target) in enumerate(progress):
        lr = schedule.apply(optimizer, first_iteration + step)
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        images, target_a, target_b, lam = mixup_batch(images, target, mixup_alpha)
        with _autocast(device, amp):
            logits = model(images)
            loss = criterion(logits, target_a)
            if lam < 1.0:
                loss = lam * loss + (1.0 - lam) * criterion(logits, target_b)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

        with torch.no_grad():
            top1_a, top5_a = topk_correct(logits.detach(), target_a)
            if lam < 1.0:
                top1_b, top5_b = topk_correct(logits.detach(), target_b)
                top1_a = lam * top1_a + (1.0 - lam) * top1_b
                top5_a = lam * top5_a + (1.0 - lam) * top5_b
            batch = images.shape[0]
            totals += torch.stack(
                [loss.detach().double() * batch, top1_a.double(), top5_a.double(),
                 torch.tensor(batch, dtype=torch.float64, device=device)]
            )
        steps += 1
        if progress.wants_numbers():
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise FloatingPointError(
                    f"training loss is {loss_value} at iteration {first_iteration + step} "
                    f"(lr {lr:.4g}): the run diverged; lower --lr or check the data"
                )
            done = totals.tolist()
            progress.show({"loss": done[0] / done[3], "top1": 100.0 * done[1] / done[3], "lr": lr})

    loss_sum, top1, top5, samples = all_reduce_sum(totals.tolist(), context)
    if samples == 0:
        raise RuntimeError(
            "the training loader gave no batch: the training set is smaller than one batch per "
            "process (batches are full: drop_last) - lower --batch-size or add images"
        )
    if not math.isfinite(loss_sum):
        raise FloatingPointError(f"training loss is {loss_sum / samples}: the run diverged")
    return {
        "loss": loss_sum / samples,
        "top1": 100.0 * top1 / samples,
        "top5": 100.0 * top5 / samples,
        "lr": lr,
        "iterations": steps,
        "samples": int(samples),
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: DataLoader,
    context: DistributedContext,
    *,
    amp: bool,
    description: str = "val",
    progress_bar: bool = True,
    print_every: int = 100,
) -> dict[str, float]:
    """Top-1 / top-5 (percent) and mean cross-entropy of ``model`` over ``loader``.

    ``model`` must be the bare module, never the DDP wrapper: each process evaluates its own
    shard (:class:`ShardSampler`, no padding, shards may differ by one batch) and the counts are
    summed over processes, so the figures are exact over the whole folder.

    Returns ``loss``, ``top1``, ``top5`` and ``samples`` (all processes together).
    """
    model.eval()
    device = context.device
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # loss sum, top1, top5, samples
    progress = Progress(loader, len(loader), description, context.is_main, progress_bar, print_every)
    for images, target in progress:
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        top1, top5 = topk_correct(logits, target)
        loss_sum = F.cross_entropy(logits, target, reduction="sum")
        totals += torch.stack(
            [loss_sum.double(), top1.double(), top5.double(),
             torch.tensor(images.shape[0], dtype=torch.float64, device=device)]
        )
        if progress.wants_numbers():
            done = totals.tolist()
            progress.show({"top1": 100.0 * done[1] / done[3], "top5": 100.0 * done[2] / done[3]})
    loss_sum, top1, top5, samples = all_reduce_sum(totals.tolist(), context)
    if samples == 0:
        raise RuntimeError("the validation folder holds no image")
    return {
        "loss": loss_sum / samples,
        "top1": 100.0 * top1 / samples,
        "top5": 100.0 * top5 / samples,
        "samples": int(samples),
    }
