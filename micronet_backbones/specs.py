"""MicroNet-M0 ... M3 as data: a stem setting and one :class:`BlockSpec` row per Micro-Block.

The rows are the authors' released configurations (liyunsheng13/micronet,
``backbone/microconfig.py``, with the settings of ``script/eval_micronet_m*.sh``). Their columns
``s, n, c, ks, c1, c2, g1, g2, c3, g3, g4, y1, y2, y3, r`` map to ours as

    stride=s, out_channels=c, kernel_size=ks, expansion=(c1, c2),
    expand_groups=(g1, g2), project_groups=(g3, g4), activations=(y1, y2, y3),
    reduction=REDUCTION * r  (REDUCTION = 8 in every released model)

``n`` is 1 in every released row (one row per block here), and the kind follows from their
markers: ``g1 == 0`` is a Micro-Block-A, ``c3 == 0`` a Micro-Block-B, anything else a
Micro-Block-C. ``in_channels`` is the previous row's ``out_channels`` (the stem's for the first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial

__all__ = ["BlockSpec", "MicroNetSpec", "M0", "M1", "M2", "M3"]

_KINDS = ("A", "B", "C")


@dataclass(frozen=True)
class BlockSpec:
    """One Micro-Block (see :mod:`micronet_backbones.blocks` for the layers of each kind).

    Attributes:
        kind: "A" (lite: depthwise expands, grouped pointwise squeezes), "B" (grouped pointwise
            expansion only; the last block of each released net) or "C" (pointwise expands,
            depthwise, pointwise squeezes; residual when shapes allow).
        in_channels, out_channels: block input / output widths.
        kernel_size: k of the k x 1 / 1 x k depthwise pair (unused by B).
        stride: 1 or 2 (of the depthwise pair; B blocks have stride 1).
        expansion: (e1, e2); the block's hidden width is ``in_channels * e1 * e2``. In A both
            depthwise convs expand (by e1 then e2); in B and C the first pointwise conv expands
            to the hidden width.
        expand_groups: (g1, g2): g1 = groups of the expanding pointwise conv (B, C; 0 for A,
            which has none); g2 = groups of the Shift-Max and channel shuffle after the block's
            first layer.
        project_groups: (g3, g4): g3 = groups of the squeezing pointwise conv (A, C; 0 for B);
            g4 = groups of the Shift-Max and channel shuffle after it.
        activations: (y1, y2, y3), the authors' codes for the activation after the expanding
            pointwise conv, after the depthwise pair and after the last pointwise conv:
            for y1, y2: 0 = ReLU6, 1 = Dynamic Shift-Max with K = 1, 2 = with K = 2;
            for y3: 0 = none, 1 = Dynamic Shift-Max with K = 1. Kind A uses (y2, y3),
            kind B uses y3 only (for its single conv), kind C uses all three. Every Dynamic
            Shift-Max here has J = 2.
        reduction: squeeze ratio of the Shift-Max hyper-functions (halved where noted in
            :mod:`micronet_backbones.blocks`).
        init_a, init_b: coefficient offsets of the K = 2 Shift-Maxes after the first layer and
            the depthwise pair: (a for k = 1, 2) on x itself and (b for k = 1, 2) on its shift.
        project_init: (a, b) offsets of the K = 1 Shift-Max after the last pointwise conv
            (authors' INIT_A_BLOCK3).
        coefficient_range: half-width of the learnt coefficient range (authors' ACT_MAX).
    """

    kind: str
    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    expansion: tuple[int, int]
    expand_groups: tuple[int, int]
    project_groups: tuple[int, int]
    activations: tuple[int, int, int]
    reduction: int
    init_a: tuple[float, float] = (1.0, 1.0)
    init_b: tuple[float, float] = (0.0, 0.0)
    project_init: tuple[float, float] = (1.0, 0.0)
    coefficient_range: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"BlockSpec.kind must be one of {_KINDS}, got {self.kind!r}")
        if self.stride not in (1, 2):
            raise ValueError(f"BlockSpec.stride must be 1 or 2, got {self.stride}")
        if self.kind == "B" and self.stride != 1:
            raise ValueError("a B block has no spatial layer: its stride must be 1")
        if self.kind == "B" and self.out_channels != self.hidden_channels:
            raise ValueError(
                f"a B block outputs its hidden width in_channels * e1 * e2 = "
                f"{self.hidden_channels}, got out_channels={self.out_channels}"
            )
        if self.activations[2] not in (0, 1):
            raise ValueError("activations[2] (y3) must be 0 or 1: that Shift-Max has K = 1")

    @property
    def hidden_channels(self) -> int:
        """Width between the block's first and last layer: ``in_channels * e1 * e2``."""
        return self.in_channels * self.expansion[0] * self.expansion[1]

    @property
    def has_residual(self) -> bool:
        """Identity shortcut, as in the authors' code: stride 1 and equal in/out widths."""
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class MicroNetSpec:
    """A whole MicroNet: stem, block rows and classifier head.

    Attributes:
        name: registry name, e.g. "micronet_m0".
        stem_groups: (g1, g2) of the stem: a 3x1 conv 3 -> g1, then a 1x3 conv with g1 groups
            g1 -> g1 * g2, a channel shuffle and ReLU6. The stem has stride 2.
        blocks: the Micro-Blocks in order.
        head_channels: width of the hidden classifier layer (authors' OUT_CH).
        dropout: dropout between the two classifier layers.
        url: the authors' released ImageNet checkpoint.
    """

    name: str
    stem_groups: tuple[int, int]
    blocks: tuple[BlockSpec, ...]
    head_channels: int
    dropout: float
    url: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        width = self.stem_channels
        for index, block in enumerate(self.blocks):
            if block.in_channels != width:
                raise ValueError(
                    f"{self.name}: block {index} takes {block.in_channels} channels but the "
                    f"previous layer gives {width}"
                )
            width = block.out_channels

    @property
    def stem_channels(self) -> int:
        return self.stem_groups[0] * self.stem_groups[1]

    @property
    def out_channels(self) -> int:
        """Width of the last block (the input of the classifier head)."""
        return self.blocks[-1].out_channels


_URL = "http://www.svcl.ucsd.edu/projects/micronet/assets/micronet-{}.pth"

# Columns: kind, in, out, k, stride, expansion, expand_groups, project_groups, activations,
# reduction.
M0 = MicroNetSpec(
    name="micronet_m0",
    stem_groups=(2, 2),
    blocks=(
        BlockSpec("A", 4, 8, 3, 2, (2, 2), (0, 4), (2, 2), (2, 0, 1), 8),
        BlockSpec("A", 8, 12, 3, 2, (2, 2), (0, 8), (4, 4), (2, 2, 1), 8),
        BlockSpec("A", 12, 16, 5, 2, (2, 2), (0, 12), (4, 4), (2, 2, 1), 8),
        BlockSpec("C", 16, 32, 5, 1, (1, 4), (4, 4), (4, 4), (2, 2, 1), 8),
        BlockSpec("C", 32, 64, 5, 2, (1, 4), (8, 8), (8, 8), (2, 2, 1), 8),
        BlockSpec("C", 64, 96, 3, 1, (1, 4), (8, 8), (8, 8), (2, 2, 1), 16),
        BlockSpec("B", 96, 384, 3, 1, (1, 4), (12, 12), (0, 0), (2, 2, 1), 16),
    ),
    head_channels=640,
    dropout=0.05,
    url=_URL.format("m0"),
)

M1 = MicroNetSpec(
    name="micronet_m1",
    stem_groups=(3, 2),
    blocks=(
        BlockSpec("A", 6, 8, 3, 2, (2, 2), (0, 6), (2, 2), (2, 0, 1), 8),
        BlockSpec("A", 8, 16, 3, 2, (2, 2), (0, 8), (4, 4), (2, 2, 1), 8),
        BlockSpec("A", 16, 16, 5, 2, (2, 2), (0, 16), (4, 4), (2, 2, 1), 8),
        BlockSpec("C", 16, 32, 5, 1, (1, 6), (4, 4), (4, 4), (2, 2, 1), 8),
        BlockSpec("C", 32, 64, 5, 2, (1, 6), (8, 8), (8, 8), (2, 2, 1), 8),
        BlockSpec("C", 64, 96, 3, 1, (1, 6), (8, 8), (8, 8), (2, 2, 1), 16),
        BlockSpec("B", 96, 576, 3, 1, (1, 6), (12, 12), (0, 0), (2, 2, 1), 16),
    ),
    head_channels=960,
    dropout=0.05,
    url=_URL.format("m1"),
)

M2 = MicroNetSpec(
    name="micronet_m2",
    stem_groups=(4, 2),
    blocks=(
        BlockSpec("A", 8, 12, 3, 2, (2, 2), (0, 8), (4, 4), (2, 0, 1), 8),
        BlockSpec("A", 12, 16, 3, 2, (2, 2), (0, 12), (4, 4), (2, 2, 1), 8),
        BlockSpec("A", 16, 24, 3, 1, (2, 2), (0, 16), (4, 4), (2, 2, 1), 8),
        BlockSpec("C", 24, 32, 5, 2, (1, 6), (6, 6), (4, 4), (2, 2, 1), 8),
        BlockSpec("C", 32, 32, 5, 1, (1, 6), (8, 8), (4, 4), (2, 2, 1), 16),
        BlockSpec("C", 32, 64, 5, 1, (1, 6), (8, 8), (8, 8), (2, 2, 1), 16),
        BlockSpec("C", 64, 96, 5, 2, (1, 6), (8, 8), (8, 8), (2, 2, 1), 16),
        BlockSpec("C", 96, 128, 3, 1, (1, 6), (12, 12), (8, 8), (2, 2, 1), 16),
        BlockSpec("B", 128, 768, 3, 1, (1, 6), (16, 16), (0, 0), (2, 2, 1), 16),
    ),
    head_channels=1024,
    dropout=0.1,
    url=_URL.format("m2"),
)

# M3 is the only model trained with other Shift-Max offsets (INIT_A 1.0,0.5; INIT_B 0.0,0.5).
_M3Block = partial(BlockSpec, init_a=(1.0, 0.5), init_b=(0.0, 0.5))
M3 = MicroNetSpec(
    name="micronet_m3",
    stem_groups=(4, 3),
    blocks=(
        _M3Block("A", 12, 16, 3, 2, (2, 2), (0, 12), (4, 4), (0, 2, 0), 8),
        _M3Block("A", 16, 24, 3, 2, (2, 2), (0, 16), (4, 4), (0, 2, 0), 8),
        _M3Block("A", 24, 24, 3, 1, (2, 2), (0, 24), (4, 4), (0, 2, 0), 8),
        _M3Block("C", 24, 32, 5, 2, (1, 6), (6, 6), (4, 4), (0, 2, 0), 8),
        _M3Block("C", 32, 32, 5, 1, (1, 6), (8, 8), (4, 4), (0, 2, 0), 16),
        _M3Block("C", 32, 64, 5, 1, (1, 6), (8, 8), (8, 8), (0, 2, 0), 16),
        _M3Block("C", 64, 80, 5, 1, (1, 6), (8, 8), (8, 8), (0, 2, 0), 16),
        _M3Block("C", 80, 80, 5, 1, (1, 6), (10, 10), (8, 8), (0, 2, 0), 16),
        _M3Block("C", 80, 120, 5, 2, (1, 6), (10, 10), (10, 10), (0, 2, 0), 16),
        _M3Block("C", 120, 120, 5, 1, (1, 6), (12, 12), (10, 10), (0, 2, 0), 16),
        _M3Block("C", 120, 144, 3, 1, (1, 6), (12, 12), (12, 12), (0, 2, 0), 16),
        _M3Block("B", 144, 864, 3, 1, (1, 6), (12, 12), (0, 0), (0, 2, 0), 16),
    ),
    head_channels=1024,
    dropout=0.1,
    url=_URL.format("m3"),
)

# The released architectures, in order: the registry names them, checkpoint identification
# tries each.
RELEASED = (M0, M1, M2, M3)
