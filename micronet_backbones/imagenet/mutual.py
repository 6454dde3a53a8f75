"""Mutual learning: networks trained together, each also pulled towards the others' predictions.

Deep Mutual Learning (Zhang et al., CVPR 2018), as the first MicroNet paper (arXiv 2011.12289v1)
uses it to train each MicroNet with its full-rank partner
(:func:`micronet_backbones.full_rank.full_rank_partner`): both networks are trained, each with

    loss_i = CE(z_i, y) + weight * mean_{j != i} T^2 * KL(softmax(z_j / T) || softmax(z_i / T))

where ``z_j`` is *detached*: network ``i`` learns from ``j``'s prediction without pushing it. The
``T^2`` factor keeps the gradient scale of the KL term independent of the temperature (Hinton et
al., distillation). Defaults are Deep Mutual Learning's (weight 1, T = 1); the MicroNet paper
does not state them. ``weight = 0`` gives independent training of every network.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["MutualLearning", "mutual_kl"]


@dataclass(frozen=True)
class MutualLearning:
    """Settings of the KL terms: ``weight`` (>= 0) and ``temperature`` T (> 0)."""

    weight: float = 1.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"mutual-learning weight must be >= 0, got {self.weight}")
        if self.temperature <= 0:
            raise ValueError(f"mutual-learning temperature must be > 0, got {self.temperature}")


def mutual_kl(
    logits: torch.Tensor, other_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """``T^2 * KL(softmax(other / T) || softmax(logits / T))``, mean over the batch, in float32.

    ``other_logits`` is detached: the gradient reaches only the network that gave ``logits``.

    Shapes: logits (N, C), other_logits (N, C) -> scalar.
    """
    if logits.shape != other_logits.shape:
        raise ValueError(
            f"mutual learning needs predictions of the same shape, got {tuple(logits.shape)} "
            f"and {tuple(other_logits.shape)}"
        )
    log_p = F.log_softmax(logits.float() / temperature, dim=1)
    log_q = F.log_softmax(other_logits.detach().float() / temperature, dim=1)
    return F.kl_div(log_p, log_q, reduction="batchmean", log_target=True) * temperature**2
