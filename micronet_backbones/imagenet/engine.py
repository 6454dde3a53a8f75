"""One training epoch of one network or several learning together, and one (exact, sharded)
evaluation pass."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from .distributed import DistributedContext, all_reduce_sum
from .losses import mixup_batch
from .mutual import MutualLearning, mutual_kl
from .progress import Progress
from .schedule import WarmupCosine

__all__ = ["Member", "topk_correct", "train_step", "train_one_epoch", "evaluate"]


def topk_correct(
    logits: torch.Tensor, target: torch.Tensor, topk: tuple[int, ...] = (1, 5)
) -> list[torch.Tensor]:
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


@dataclass
class Member:
    """One network of a training run.

    Attributes:
        name: its prefix in logs and checkpoints ("" for the MicroNet, "partner" for its
            full-rank partner).
        model: the bare module (evaluated and saved).
        trained: what the training step runs: the ``DistributedDataParallel`` wrapper of
            ``model`` when distributed, else ``model`` itself.
        optimizer: its optimizer (the lr of each step comes from the shared schedule).
    """

    name: str
    model: nn.Module
    trained: nn.Module
    optimizer: torch.optim.Optimizer


def _mixed_loss(
    criterion: nn.Module, logits: torch.Tensor, target_a, target_b, lam: float
) -> torch.Tensor:
    """``criterion`` against the mixup targets: ``lam * loss(a) + (1 - lam) * loss(b)``."""
    loss = criterion(logits, target_a)
    if lam < 1.0:
        loss = lam * loss + (1.0 - lam) * criterion(logits, target_b)
    return loss


def _mixed_topk(logits: torch.Tensor, target_a, target_b, lam: float) -> torch.Tensor:
    """(top-1, top-5) hit counts against the mixup targets, ``lam``-weighted: tensor (2,)."""
    hits = torch.stack(topk_correct(logits, target_a))
    if lam < 1.0:
        hits = lam * hits + (1.0 - lam) * torch.stack(topk_correct(logits, target_b))
    return hits


def train_step(
    members: Sequence[Member],
    images: torch.Tensor,
    target: torch.Tensor,
    criterion: nn.Module,
    scaler: torch.amp.GradScaler,
    *,
    amp: bool,
    mixup_alpha: float = 0.0,
    mutual: MutualLearning | None = None,
) -> torch.Tensor:
    """One optimiser step of every member on one batch (lr already set).

    Each member's loss is its (mixup-weighted, smoothed) cross-entropy, plus with ``mutual``
    ``weight *`` the mean of its :func:`~.mutual.mutual_kl` towards every other member's
    detached prediction. The members' losses are summed for one backward pass: as the other
    predictions are detached, each member's gradient is that of its own loss. One scaler serves
    every optimizer (AMP's pattern for several optimizers).

    Shapes: images (N, 3, H, W), target (N,) -> per-member numbers (len(members), 6): loss, CE,
    KL (0 without ``mutual``), top-1 hits, top-5 hits, batch size (the loss terms as batch sums).
    """
    device = images.device
    images, target_a, target_b, lam = mixup_batch(images, target, mixup_alpha)
    with _autocast(device, amp):
        logits = [member.trained(images) for member in members]
        ces = [_mixed_loss(criterion, z, target_a, target_b, lam) for z in logits]
    zero = torch.zeros((), device=device)
    kls = [zero] * len(members)
    if mutual is not None and len(members) > 1:
        kls = [
            sum(mutual_kl(z, other, mutual.temperature) for j, other in enumerate(logits) if j != i)
            / (len(members) - 1)
            for i, z in enumerate(logits)
        ]
        losses = [ce + mutual.weight * kl for ce, kl in zip(ces, kls)]
    else:
        losses = ces
    for member in members:
        member.optimizer.zero_grad(set_to_none=True)
    scaler.scale(sum(losses)).backward()
    for member in members:
        scaler.step(member.optimizer)
    scaler.update()

    with torch.no_grad():
        batch = torch.tensor(float(images.shape[0]), device=device)
        return torch.stack(
            [
                torch.cat(
                    [
                        torch.stack(
                            [loss.detach().float(), ce.detach().float(), kl.detach().float()]
                        )
                        * batch,
                        _mixed_topk(z.detach().float(), target_a, target_b, lam),
                        batch.view(1),
                    ]
                )
                for loss, ce, kl, z in zip(losses, ces, kls, logits)
            ]
        ).double()


def train_one_epoch(
    members: Sequence[Member],
    loader: DataLoader,
    criterion: nn.Module,
    schedule: WarmupCosine,
    scaler: torch.amp.GradScaler,
    context: DistributedContext,
    *,
    first_iteration: int,
    amp: bool,
    mixup_alpha: float = 0.0,
    mutual: MutualLearning | None = None,
    description: str = "train",
    progress_bar: bool = True,
    print_every: int = 100,
) -> dict:
    """Train every member for one pass over ``loader`` (see :func:`train_step`).

    The lr of every step comes from ``schedule`` at global iteration ``first_iteration + step``.
    With mixup, loss and accuracy are the ``lam``-weighted mix of both targets (as the authors
    report them).

    Returns ``lr`` (of the last step), ``iterations`` (steps taken by each process), ``samples``
    (all processes) and, per member name, the averages over every process: ``loss``, ``ce``,
    ``kl`` and ``top1``, ``top5`` (percent).
    """
    for member in members:
        member.trained.train()
    device = context.device
    totals = torch.zeros(len(members), 6, dtype=torch.float64, device=device)
    lr = schedule.lr(first_iteration)
    steps = 0
    progress = Progress(
        loader, len(loader), description, context.is_main, progress_bar, print_every
    )
    for step, (images, target) in enumerate(progress):
        for member in members:
            lr = schedule.apply(member.optimizer, first_iteration + step)
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        totals += train_step(
            members,
            images,
            target,
            criterion,
            scaler,
            amp=amp,
            mixup_alpha=mixup_alpha,
            mutual=mutual,
        )
        steps += 1
        if progress.wants_numbers():
            done = totals.tolist()
            if not all(math.isfinite(row[0]) for row in done):
                raise FloatingPointError(
                    f"training loss is not finite at iteration {first_iteration + step} "
                    f"(lr {lr:.4g}): the run diverged; lower --lr or check the data"
                )
            numbers = {"loss": done[0][0] / done[0][5], "top1": 100.0 * done[0][3] / done[0][5]}
            progress.show({**numbers, "lr": lr})

    summed = all_reduce_sum(totals.flatten().tolist(), context)
    rows = [summed[i * 6 : (i + 1) * 6] for i in range(len(members))]
    samples = rows[0][5]
    if samples == 0:
        raise RuntimeError(
            "the training loader gave no batch: the training set is smaller than one batch per "
            "process (batches are full: drop_last) - lower --batch-size or add images"
        )
    result = {"lr": lr, "iterations": steps, "samples": int(samples)}
    for member, (loss, ce, kl, top1, top5, _) in zip(members, rows):
        if not math.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss / samples}: the run diverged")
        result[member.name] = {
            "loss": loss / samples,
            "ce": ce / samples,
            "kl": kl / samples,
            "top1": 100.0 * top1 / samples,
            "top5": 100.0 * top5 / samples,
        }
    return result


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
    progress = Progress(
        loader, len(loader), description, context.is_main, progress_bar, print_every
    )
    for images, target in progress:
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        with _autocast(device, amp):
            logits = model(images)
        logits = logits.float()
        top1, top5 = topk_correct(logits, target)
        loss_sum = F.cross_entropy(logits, target, reduction="sum")
        totals += torch.stack(
            [
                loss_sum.double(),
                top1.double(),
                top5.double(),
                torch.tensor(images.shape[0], dtype=torch.float64, device=device),
            ]
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
