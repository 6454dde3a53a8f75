"""Classification loss with optional label smoothing and mixup, as in the authors' ``main.py``."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SmoothedCrossEntropy", "mixup_batch"]


class SmoothedCrossEntropy(nn.Module):
    """Cross-entropy against a smoothed target.

    The target class gets ``1 - smoothing`` and every other class ``smoothing / (C - 1)`` (the
    authors' ``LabelSmoothingLoss``; note ``nn.CrossEntropyLoss(label_smoothing=e)`` spreads
    ``e / C`` over all classes instead). ``smoothing = 0`` is plain cross-entropy.

    Shapes: logits (N, C), target (N,) int64 -> scalar (mean over N).
    """

    def __init__(self, smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
        self.smoothing = smoothing

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.smoothing == 0.0:
            return F.cross_entropy(logits, target)
        num_classes = logits.shape[-1]
        log_prob = logits.float().log_softmax(dim=-1)
        weight = torch.full_like(log_prob, self.smoothing / (num_classes - 1))
        weight.scatter_(-1, target.unsqueeze(-1), 1.0 - self.smoothing)
        return (-weight * log_prob).sum(dim=-1).mean()


def mixup_batch(
    images: torch.Tensor, target: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Mix a batch with a shuffled copy of itself (Zhang et al., mixup).

    ``lam ~ Beta(alpha, alpha)`` (``lam = 1``, no mixing, when ``alpha == 0``); the loss is then
    ``lam * loss(target_a) + (1 - lam) * loss(target_b)``.

    Shapes: images (N, 3, H, W), target (N,) -> mixed images (N, 3, H, W), target_a (N,),
    target_b (N,), lam.
    """
    if alpha < 0:
        raise ValueError(f"mixup alpha must be >= 0, got {alpha}")
    if alpha == 0:
        return images, target, target, 1.0
    beta = torch.distributions.Beta(torch.tensor(float(alpha)), torch.tensor(float(alpha)))
    lam = float(beta.sample())
    order = torch.randperm(images.shape[0]).to(images.device)
    mixed = lam * images + (1.0 - lam) * images[order]
    return mixed, target, target[order], lam
