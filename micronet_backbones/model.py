"""MicroNet: stem, Micro-Blocks grouped into stages by stride, optional classifier head.

Module layout (the names our checkpoints use)::

    stem                      Stem, stride 2
    stages.0 ... stages.3     nn.Sequential of Micro-Blocks, one stage per stride 4, 8, 16, 32
                              of the ImageNet network (block j of stage i: ``stages.i.j``)
    head                      ClassifierHead, or None when ``features_only``

Stages are the units a detector freezes: Detectron2's ``freeze_at = 1`` is the stem,
``freeze_at = 1 + i`` the stem and ``stages[:i]``. Norm layers: ``nn.BatchNorm2d`` in stem and
blocks (plain modules, so ``FrozenBatchNorm2d.convert_frozen_batchnorm`` and
``nn.SyncBatchNorm.convert_sync_batchnorm`` apply); ``nn.BatchNorm1d`` only in the classifier
head, which a ``features_only`` model does not have. The Shift-Max hyper-functions have no norm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import MICRO_FACTORIZED, BlockConvs, Stem, block_from_spec, init_weights_
from .specs import MicroNetSpec

__all__ = ["ClassifierHead", "FeatureInfo", "MicroNet", "block_module_names", "check_image_batch"]

MIN_SIZE = 32
_OUTPUT_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class FeatureInfo:
    """One feature tap: the output of stage ``stage`` (module ``module``, e.g. "stages.3"),
    with ``channels`` channels at ``stride`` (input size / feature size, as actually run)."""

    stage: int
    module: str
    channels: int
    stride: int


def check_image_batch(x: torch.Tensor, channels: int = 3) -> None:
    """Raise ``ValueError`` unless ``x`` is (N, channels, H, W) with H, W >= 32.

    Skipped while ``torch.jit.trace`` records (fvcore, TorchScript / ONNX export by tracing),
    where shapes are traced values and the graph is recorded for one valid input anyway.
    """
    if torch.jit.is_tracing():
        return
    if x.dim() != 4 or x.shape[1] != channels or x.shape[2] < MIN_SIZE or x.shape[3] < MIN_SIZE:
        raise ValueError(
            f"MicroNet expects input of shape (N, {channels}, H, W) with H, W >= {MIN_SIZE}, "
            f"got {tuple(x.shape)}"
        )


def _hard_swish(x: torch.Tensor) -> torch.Tensor:
    """x * ReLU6(x + 3) / 6, in the authors' order of operations."""
    return x * (F.relu6(x + 3.0) / 6.0)


def _nominal_strides(spec: MicroNetSpec) -> list[int]:
    """Output stride of every block of the ImageNet network (stem stride 2)."""
    strides, stride = [], 2
    for block in spec.blocks:
        stride *= block.stride
        strides.append(stride)
    return strides


def _stage_of_blocks(spec: MicroNetSpec) -> list[int]:
    """Stage index of every block: consecutive blocks with the same nominal stride."""
    stages, previous = [], None
    for stride in _nominal_strides(spec):
        stage = (stages[-1] if stages else -1) + (stride != previous)
        stages.append(stage)
        previous = stride
    return stages


def block_module_names(spec: MicroNetSpec) -> list[str]:
    """Module name of every block in order, e.g. ["stages.0.0", "stages.1.0", ...]."""
    names, counts = [], {}
    for stage in _stage_of_blocks(spec):
        names.append(f"stages.{stage}.{counts.get(stage, 0)}")
        counts[stage] = counts.get(stage, 0) + 1
    return names


class ClassifierHead(nn.Module):
    """The authors' classifier: (N, C, H, W) -> (N, num_classes).

    ReLU6 -> global average pool -> h-swish -> ``fc1`` (C -> hidden) -> ``bn1`` (BatchNorm1d)
    -> h-swish -> dropout -> ``fc2`` (hidden -> num_classes) -> ``bn2`` (BatchNorm1d) -> h-swish.
    (The logits do pass through BatchNorm1d and h-swish, as in the released models.)
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, num_classes: int, dropout: float
    ) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_channels, hidden_channels)
        self.bn1 = nn.BatchNorm1d(hidden_channels)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(hidden_channels, num_classes)
        self.bn2 = nn.BatchNorm1d(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(F.relu6(x), 1)
        x = _hard_swish(x).flatten(1)
        x = self.dropout(_hard_swish(self.bn1(self.fc1(x))))
        return _hard_swish(self.bn2(self.fc2(x)))


class MicroNet(nn.Module):
    """MicroNet backbone / classifier (see the module docstring for the layout).

    Args:
        spec: the architecture (``micronet_backbones.specs.M0`` ... ``M3``).
        num_classes: classifier outputs (ignored when ``features_only``).
        features_only: no head; ``forward`` returns a list of feature maps.
        out_strides: strides to tap when ``features_only`` (default: every stride the network
            runs at, i.e. (4, 8, 16, 32), or (4, 8, 16) with ``output_stride=16``). Each tap is
            the output of the last block at that stride.
        output_stride: 32 (the ImageNet network), 16 or 8. Every block that would run below it
            runs at stride 1 instead of 2 (weights unchanged, no dilation): the pose setting of
            the paper is ``output_stride=16``.
        dropout: classifier dropout (default: the authors' value for the arch).
        convs: builders of the blocks' convolutions (default: MicroNet's Micro-Factorized ones;
            :func:`micronet_backbones.full_rank.full_rank_partner` passes dense ones).

    Attributes:
        spec, output_stride, features_only, stem, stages, head (None when ``features_only``),
        ``stage_info`` (a :class:`FeatureInfo` per stage, strides as run) and ``feature_info``
        (the taps ``forward`` returns when ``features_only``; every stride's last stage
        otherwise), ``num_features`` (width of the last block).

    ``forward``: (N, 3, H, W), H, W >= 32 -> logits (N, num_classes), or with ``features_only``
    a list of (N, C_i, ceil(H / s_i), ceil(W / s_i)) maps, one per tap, in increasing stride
    (every stride-2 layer maps a size n to ceil(n / 2), as in the authors' code; no padding to a
    multiple of 32 is needed or done). Any other input raises ``ValueError``. A ``features_only``
    model does not run the stages after its last tap (their parameters then get no gradient).
    """

    def __init__(
        self,
        spec: MicroNetSpec,
        *,
        num_classes: int = 1000,
        features_only: bool = False,
        out_strides: Sequence[int] | None = None,
        output_stride: int = 32,
        dropout: float | None = None,
        convs: BlockConvs = MICRO_FACTORIZED,
    ) -> None:
        super().__init__()
        if output_stride not in _OUTPUT_STRIDES:
            raise ValueError(f"output_stride must be one of {_OUTPUT_STRIDES}, got {output_stride}")
        if not features_only and num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.spec = spec
        self.output_stride = output_stride
        self.features_only = features_only
        self.stem = Stem(spec.stem_groups)

        stage_of_block = _stage_of_blocks(spec)
        stages: list[list[nn.Module]] = [[] for _ in range(stage_of_block[-1] + 1)]
        stage_strides = [0] * len(stages)
        stride = self.stem.stride
        for row, stage in zip(spec.blocks, stage_of_block):
            block_stride = row.stride if stride * row.stride <= output_stride else 1
            stride *= block_stride
            stages[stage].append(block_from_spec(row, stride=block_stride, convs=convs))
            stage_strides[stage] = stride
        self.stages = nn.ModuleList(nn.Sequential(*blocks) for blocks in stages)
        self.stage_info = tuple(
            FeatureInfo(i, f"stages.{i}", blocks[-1].out_channels, stage_strides[i])
            for i, blocks in enumerate(stages)
        )
        self.num_features = spec.out_channels

        # The tap at a stride is the last stage running at that stride.
        last_stage_at = {info.stride: info.stage for info in self.stage_info}
        available = tuple(sorted(last_stage_at))
        if out_strides is None:
            out_strides = available
        requested = tuple(sorted(set(out_strides)))
        unknown = [s for s in requested if s not in last_stage_at]
        if unknown or not requested or len(requested) != len(tuple(out_strides)):
            raise ValueError(
                f"out_strides must be distinct values among {available} for {spec.name} with "
                f"output_stride={output_stride}, got {tuple(out_strides)}"
            )
        self.feature_info = tuple(self.stage_info[last_stage_at[s]] for s in requested)
        self._tap_stages = tuple(info.stage for info in self.feature_info)

        if features_only:
            self.head = None
        else:
            self.head = ClassifierHead(
                spec.out_channels,
                spec.head_channels,
                num_classes,
                spec.dropout if dropout is None else dropout,
            )
            init_weights_(self.head)

    @property
    def arch(self) -> str:
        """Registry name of the architecture, e.g. "micronet_m0"."""
        return self.spec.name

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> output of the last block, (N, num_features, H', W')."""
        check_image_batch(x)
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if not self.features_only:
            return self.head(self.forward_features(x))
        check_image_batch(x)
        x = self.stem(x)
        features = []
        for index, stage in enumerate(self.stages[: self._tap_stages[-1] + 1]):
            x = stage(x)
            if index in self._tap_stages:
                features.append(x)
        return features
