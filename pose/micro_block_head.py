"""MMPose head ``MicroBlockHead``: the paper's Micro-Block keypoint head for top-down heatmaps.

Layout (MicroNet, Li et al., ICCV 2021, human pose estimation)::

    stride-16 feature (N, C_in, H/16, W/16)
      -> bilinear x2 -> Micro-Block(s) at stride 8          (``stride8_blocks``, paper: one)
      -> bilinear x2 -> Micro-Blocks at stride 4            (``stride4_blocks``, paper: two)
      -> 1x1 conv -> (N, K, H/4, W/4) heatmaps, K = ``out_channels`` (64 x 48 for 256 x 192)

The blocks are the core's Micro-Blocks (:func:`micronet_backbones.block_from_spec`), built from
:class:`micronet_backbones.BlockSpec` rows whose widths are config data. Every Dynamic Shift-Max
in them uses the spatial attention of Dynamic ReLU (DY-ReLU-C: coefficients modulated per
position, the core's ``DynamicShiftMax(spatial_attention=True)``), as the paper does for the
head.

The head is MMPose's ``HeatmapHead`` with these layers: it owns its loss (default
``KeypointMSELoss`` with target weights) and decoder (e.g. ``MSRAHeatmap``) and runs MMPose's
flip test (``test_cfg=dict(flip_test=True, flip_mode='heatmap', shift_heatmap=True)``) through
``HeatmapHead``'s own ``loss`` / ``predict``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS
from torch import nn

from micronet_backbones import BlockSpec, block_from_spec
from micronet_backbones.ops import add_spatial_attention

__all__ = ["MicroBlockHead", "build_head_blocks"]

# Fields of a block row that the head fills in itself; everything else comes from the config.
_BLOCK_DEFAULTS = dict(kind="C", kernel_size=5, activations=(2, 2, 1))


def _with_spatial_attention(block: nn.Module) -> nn.Module:
    """Replace every ``DynamicShiftMax`` of ``block`` by the same one with spatial attention.

    Same channels, groups, J, K, coefficient offsets, range and squeeze width; fresh weights
    with the core's initialisation. Returns ``block`` (modified in place).
    """
    return add_spatial_attention(block)


def build_head_blocks(
    in_channels: int, rows: Sequence[Mapping], spatial_attention: bool = True
) -> tuple[nn.Sequential, int]:
    """Micro-Blocks at stride 1 from config rows; returns (blocks, output channels).

    Each row holds :class:`~micronet_backbones.BlockSpec` fields except ``in_channels`` (the
    previous block's output) and ``stride`` (1); ``kind`` defaults to "C", ``kernel_size`` to 5
    and ``activations`` to (2, 2, 1) (Dynamic Shift-Max with K = 2, 2, 1). Lists are accepted
    for tuple fields (configs hold lists after a round trip).
    """
    blocks = []
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"head block {index} must be a dict of BlockSpec fields, got {row!r}")
        fields = {**_BLOCK_DEFAULTS, **row}
        for reserved in ("in_channels", "stride"):
            if reserved in row:
                raise ValueError(
                    f"head block {index}: {reserved!r} is set by the head, not the row"
                )
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
        try:
            spec = BlockSpec(in_channels=in_channels, stride=1, **fields)
        except TypeError as error:
            raise ValueError(f"head block {index} {dict(row)}: {error}") from None
        block = block_from_spec(spec)
        blocks.append(_with_spatial_attention(block) if spatial_attention else block)
        in_channels = spec.out_channels
    return nn.Sequential(*blocks), in_channels


@MODELS.register_module()
class MicroBlockHead(HeatmapHead):
    """Micro-Block top-down heatmap head (see the module docstring for the layout).

    A :class:`mmpose.models.heads.HeatmapHead` whose deconvolutions are replaced by the
    paper's bilinear upsampling and Micro-Blocks: loss, accuracy, decoding and flip test are
    MMPose's (``HeatmapHead.loss`` / ``predict``); only the layers and ``forward`` are MicroNet's.

    Args:
        in_channels: channels of the backbone's last (stride-16) feature map.
        out_channels: number of keypoints K (17 for COCO).
        stride8_blocks: rows of the Micro-Blocks after the first upsampling (dicts of
            :class:`~micronet_backbones.BlockSpec` fields, see :func:`build_head_blocks`).
        stride4_blocks: rows of the Micro-Blocks after the second upsampling.
        spatial_attention: DY-ReLU-C spatial attention in every Dynamic Shift-Max (paper: on).
        align_corners: of the bilinear upsampling.
        loss: keypoint loss config (``None``: ``KeypointMSELoss`` with target weights).
        decoder: keypoint codec config (e.g. ``MSRAHeatmap``), needed by ``predict``.
        init_cfg: MMEngine init config. By default (``None``) the blocks keep the authors'
            initialisation and the final conv is N(0, 0.001) with zero bias (as
            ``HeatmapHead``'s), instead of ``HeatmapHead``'s N(0, 0.001) for every conv.

    ``forward``: tuple of backbone features (the last one is used, (N, in_channels, h, w)) ->
    heatmaps (N, out_channels, 4h, 4w).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride8_blocks: Sequence[Mapping],
        stride4_blocks: Sequence[Mapping],
        spatial_attention: bool = True,
        align_corners: bool = False,
        loss: dict | None = None,
        decoder: dict | None = None,
        init_cfg: dict | list | None = None,
    ) -> None:
        if loss is None:
            loss = dict(type="KeypointMSELoss", use_target_weight=True)
        if not stride8_blocks or not stride4_blocks:
            raise ValueError("MicroBlockHead needs at least one block at stride 8 and at stride 4")
        # HeatmapHead without its deconvolutions, convolutions and final layer (the layers of
        # this head replace them): it keeps the loss module and the decoder.
        super().__init__(
            in_channels,
            out_channels,
            deconv_out_channels=None,
            conv_out_channels=None,
            final_layer=None,
            loss=loss,
            decoder=decoder,
            init_cfg=init_cfg,
        )
        del self.deconv_layers, self.conv_layers, self.final_layer
        self.align_corners = align_corners
        self.stride8, width = build_head_blocks(in_channels, stride8_blocks, spatial_attention)
        self.stride4, width = build_head_blocks(width, stride4_blocks, spatial_attention)
        self.final_layer = nn.Conv2d(width, out_channels, kernel_size=1)
        nn.init.normal_(self.final_layer.weight, 0.0, 0.001)
        nn.init.zeros_(self.final_layer.bias)

    @property
    def default_init_cfg(self) -> None:
        """No MMEngine init by default: the Micro-Blocks keep the core's (the authors')
        initialisation, the final conv is initialised in ``__init__``."""
        return None

    def _upsample(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=self.align_corners)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = feats[-1]
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"MicroBlockHead expects a last feature of shape (N, {self.in_channels}, h, w), "
                f"got {tuple(x.shape)}"
            )
        x = self.stride8(self._upsample(x))
        x = self.stride4(self._upsample(x))
        return self.final_layer(x)

    def predict(self, feats, batch_data_samples, test_cfg: Mapping = {}):
        """``HeatmapHead.predict`` (decoding, MMPose's flip test when ``test_cfg['flip_test']``)
        with a clear error when the flip test gets no flipped features.

        Returns one ``InstanceData`` per sample with ``keypoints`` (num_instances, K, 2) and
        ``keypoint_scores`` (num_instances, K); heatmaps too with ``test_cfg['output_heatmaps']``.
        """
        if test_cfg.get("flip_test", False) and not (isinstance(feats, list) and len(feats) == 2):
            raise ValueError("flip test expects [features, flipped features]")
        return super().predict(feats, batch_data_samples, test_cfg)
