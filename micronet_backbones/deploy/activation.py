"""ReLU6, optionally followed by a channel permutation written in the same pass."""

from __future__ import annotations

import torch
from torch import nn

from .permutation import ChannelPermutation

__all__ = ["FusedReLU6"]


class FusedReLU6(nn.Module):
    """(N, C, H, W) -> (N, C, H, W): ``output(relu6(x))``.

    With ``inplace=True`` and no permutation, it clamps the input in place (a traced graph gets
    the functional op): only for inputs nothing else reads (the output of the previous op
    inside a fused block).
    """

    def __init__(self, output: ChannelPermutation | None = None, inplace: bool = False) -> None:
        super().__init__()
        self.output = output
        self.inplace = inplace

    def absorb_input_permutation(self, index: torch.Tensor) -> torch.Tensor:
        """ReLU6 commutes with any channel permutation: returns ``index`` unchanged."""
        return index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.output is not None:
            return self.output.write(torch.clamp, x, shape=x.shape, min=0.0, max=6.0)
        if self.inplace:
            return x.clamp_(0.0, 6.0)
        return torch.clamp(x, 0.0, 6.0)
