"""Per-iteration learning rate: linear warm-up from 0, then cosine decay to 0.

Same shape as the authors' ``adjust_learning_rate`` (``main.py``, ``--lr-decay cos``): the lr is
set before every optimiser step from the global iteration count, so resuming only needs the
number of finished iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["WarmupCosine"]


@dataclass(frozen=True)
class WarmupCosine:
    """lr(iteration) for ``total_iters`` iterations, ``warmup_iters`` of them warm-up.

    ``lr(i) = peak_lr * i / warmup_iters`` for ``i < warmup_iters``, then
    ``peak_lr * (1 + cos(pi * (i - warmup_iters) / (total_iters - warmup_iters))) / 2``.
    """

    peak_lr: float
    total_iters: int
    warmup_iters: int = 0

    def __post_init__(self) -> None:
        if self.peak_lr < 0:
            raise ValueError(f"learning rate must be >= 0, got {self.peak_lr}")
        if self.total_iters <= 0:
            raise ValueError(f"the schedule needs at least one iteration, got {self.total_iters}")
        if not 0 <= self.warmup_iters < self.total_iters:
            raise ValueError(
                f"warm-up ({self.warmup_iters} iterations) must be shorter than the whole "
                f"schedule ({self.total_iters} iterations)"
            )

    def lr(self, iteration: int) -> float:
        """Learning rate of the step taken at 0-based global ``iteration``."""
        if iteration < self.warmup_iters:
            return self.peak_lr * iteration / self.warmup_iters
        progress = (iteration - self.warmup_iters) / (self.total_iters - self.warmup_iters)
        progress = min(progress, 1.0)
        return self.peak_lr * (1.0 + math.cos(math.pi * progress)) / 2.0

    def apply(self, optimizer: torch.optim.Optimizer, iteration: int) -> float:
        """Set every param group's lr for ``iteration``; returns it."""
        lr = self.lr(iteration)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def state_dict(self) -> dict:
        """Plain numbers (loadable with ``torch.load(..., weights_only=True)``)."""
        return {
            "name": "warmup_cosine",
            "peak_lr": self.peak_lr,
            "total_iters": self.total_iters,
            "warmup_iters": self.warmup_iters,
        }
