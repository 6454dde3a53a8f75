"""MMSegmentation decode head ``MRASPPHead``: LR-ASPP with Micro-Factorized pointwise convs.

MR-ASPP (MicroNet, Li et al., earlier arXiv version, semantic segmentation) is LR-ASPP, the
MobileNetV3 segmentation head (Howard et al., ICCV 2019), whose 1x1 convolutions are replaced
by the core's Micro-Factorized pointwise convolutions (two grouped 1x1 convs around a channel
shuffle)::

    high: stride-16 feature (N, C16, h16, w16)
      branch: MF pointwise C16 -> channels -> BN -> ReLU          (or Dynamic Shift-Max, below)
      gate:   global average pool -> MF pointwise C16 -> channels -> sigmoid   (N, channels, 1, 1)
      branch * gate -> bilinear to the stride-8 size -> classifier -> (N, classes, h8, w8)
    low:  stride-8 feature (N, C8, h8, w8) -> classifier -> (N, classes, h8, w8)
    logits = the sum of the two classifiers' outputs

The gate pools globally (``adaptive_avg_pool2d(x, 1)``), so the head runs at any input size;
MMSegmentation's ``LRASPPHead`` uses a fixed 49x49 average pool that fails on stride-16 maps
smaller than 49x49 (e.g. a 333x517 image).

The two classifiers stay plain 1x1 convs with bias: a Micro-Factorized conv needs a group
number dividing the class count (19 for Cityscapes: one group), where it would only be a
low-rank dense layer. The high classifier is ``BaseDecodeHead``'s ``conv_seg`` (with its
dropout), so MMSegmentation's ``loss_by_feat`` / ``predict_by_feat``, ``ignore_index`` and
losses apply unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from mmseg.models.decode_heads.decode_head import BaseDecodeHead
from mmseg.registry import MODELS
from torch import nn

from micronet_backbones.blocks import init_weights_
from micronet_backbones.ops import DynamicShiftMax, MicroFactorizedPointwise

__all__ = ["MRASPPHead"]

_CLASSIFIER_INIT = dict(
    type="Normal", std=0.01, override=[dict(name="conv_seg"), dict(name="low_classifier")]
)


@MODELS.register_module()
class MRASPPHead(BaseDecodeHead):
    """MR-ASPP decode head (see the module docstring for the layout).

    Args:
        in_channels: (C8, C16), the channels of the stride-8 and stride-16 features the head
            reads (``in_index`` picks them from the backbone's outputs; default (0, 1)).
        channels: width of the high branch (LR-ASPP: 128).
        hidden_channels: inner width C / R of the Micro-Factorized pointwise convs (default:
            ``channels``); their group number follows the paper's Eq. 2, ``G = sqrt(C / R)``
            rounded to a common divisor of the widths (see ``MicroFactorizedPointwise``).
        shift_max: use, instead of the high branch's ReLU, Dynamic Shift-Max (K = 2, J = 2 over
            the MF conv's groups) with the spatial attention of Dynamic ReLU, as the pose head
            does (the core's ``DynamicShiftMax(spatial_attention=True)``). Default False: the
            LR-ASPP layout.
        **kwargs: ``BaseDecodeHead``'s (``num_classes``, ``dropout_ratio``, ``loss_decode``,
            ``align_corners``, ``ignore_index``, ...). ``input_transform`` must be
            'multiple_select' (the default here). ``norm_cfg`` / ``act_cfg`` are not used: the
            BatchNorms are the core's ``nn.BatchNorm2d`` (MMEngine's ``sync_bn`` converts them
            for multi-GPU training).

    ``forward``: the backbone's tuple of features -> logits (N, num_classes, h8, w8). A feature
    whose channels differ from ``in_channels`` raises ``ValueError`` naming both.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 128,
        *,
        hidden_channels: int | None = None,
        shift_max: bool = False,
        in_index: Sequence[int] = (0, 1),
        input_transform: str = "multiple_select",
        init_cfg: dict | list | None = _CLASSIFIER_INIT,
        **kwargs,
    ) -> None:
        if input_transform != "multiple_select":
            raise ValueError(
                f"MRASPPHead reads two features: input_transform must be 'multiple_select', "
                f"got {input_transform!r}"
            )
        if not isinstance(in_channels, Sequence) or len(in_channels) != 2:
            raise ValueError(
                "MRASPPHead needs in_channels=(C8, C16), the channels of the stride-8 and "
                f"stride-16 features, got {in_channels!r}"
            )
        if not isinstance(in_index, Sequence) or len(in_index) != 2:
            raise ValueError(f"MRASPPHead needs in_index=(i8, i16), got {in_index!r}")
        super().__init__(
            tuple(in_channels),
            channels,
            in_index=tuple(in_index),
            input_transform=input_transform,
            init_cfg=init_cfg,
            **kwargs,
        )
        low_channels, high_channels = self.in_channels
        hidden = channels if hidden_channels is None else hidden_channels
        self.branch = MicroFactorizedPointwise(
            high_channels, channels, hidden_channels=hidden, norm=True
        )
        if shift_max:
            self.activation = DynamicShiftMax(
                channels,
                self.branch.groups,
                num_shifts=2,
                num_fusions=2,
                spatial_attention=True,
            )
        else:
            self.activation = nn.ReLU(inplace=True)
        self.gate = MicroFactorizedPointwise(high_channels, channels, hidden_channels=hidden)
        self.low_classifier = nn.Conv2d(low_channels, self.out_channels, kernel_size=1)
        init_weights_(self.branch)
        init_weights_(self.gate)

    def _check_features(self, features: Sequence[torch.Tensor]) -> None:
        if torch.jit.is_tracing():  # a trace records one valid input (fvcore, export)
            return
        got = tuple(int(f.shape[1]) for f in features)
        if got != tuple(self.in_channels):
            raise ValueError(
                f"MRASPPHead was built with in_channels={tuple(self.in_channels)} (stride 8, "
                f"stride 16) but the backbone's features at in_index={tuple(self.in_index)} "
                f"have {got} channels: set decode_head.in_channels to the backbone's "
                "feature channels"
            )

    def forward(self, inputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """Backbone features -> logits (N, num_classes, h8, w8) at the stride-8 size."""
        low, high = self._transform_inputs(inputs)
        self._check_features((low, high))
        gate = torch.sigmoid(self.gate(F.adaptive_avg_pool2d(high, 1)))
        x = self.activation(self.branch(high)) * gate
        x = F.interpolate(x, size=low.shape[2:], mode="bilinear", align_corners=self.align_corners)
        return self.cls_seg(x) + self.low_classifier(low)
