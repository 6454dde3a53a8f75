"""MicroNet as a Detectron2 ``Backbone``, and ``build_micronet_backbone`` (the bare backbone).

The network itself comes from the core (``micronet_backbones.create_model(...,
features_only=True)``); this module only names its feature maps the Detectron2 way, applies
Detectron2's norm choices and freezing, and loads the authors' ImageNet checkpoint through the
core's loader.

Output: a dict ``{"stride4": (N, C4, H/4, W/4), "stride8": ..., "stride16": ...,
"stride32": (N, C32, H/32, W/32)}`` for an input (N, 3, H, W) whose H and W are multiples of
``size_divisibility`` (Detectron2's ``ImageList`` pads to that). ``output_shape()`` declares the
channels and stride of each; for M0-M3 the channels at strides 4 / 8 / 16 / 32 are

    micronet_m0: 8 / 12 / 32 / 384     micronet_m1: 8 / 16 / 32 / 576
    micronet_m2: 12 / 24 / 64 / 768    micronet_m3: 16 / 24 / 80 / 864

(read them from ``output_shape()``; the table is for orientation). Parameter names are the
core's under ``micronet.`` (``micronet.stem.*``, ``micronet.stages.<i>.<j>.*``).
"""

from __future__ import annotations

import logging

from detectron2.layers import FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

import micronet_backbones as core

from .config import FEATURE_NAMES, NORMS, feature_name

__all__ = ["MicroNetBackbone", "build_micronet_backbone"]

logger = logging.getLogger(__name__)


def _stride_of(name: str) -> int:
    if name not in FEATURE_NAMES:
        raise ValueError(
            f"unknown MicroNet feature {name!r}; valid names: {', '.join(FEATURE_NAMES)}"
        )
    return int(name[len("stride") :])


class MicroNetBackbone(Backbone):
    """A MicroNet returning named multi-scale features (see the module docstring).

    Args:
        arch: one of ``micronet_backbones.list_models()``, either spelling ("micronet_m3" or
            "m3"); ``ValueError`` listing the valid names otherwise.
        out_features: names to return, any of "stride4", "stride8", "stride16", "stride32".
        freeze_at: 0 freezes nothing, 1 the stem, k >= 2 the stem and the stages up to
            stride 2**k (Detectron2's ``FREEZE_AT`` convention; at most 5, everything).
        norm: "BN" (plain BatchNorm2d), "FrozenBN" (Detectron2's FrozenBatchNorm2d) or
            "SyncBN" (``nn.SyncBatchNorm``) for the parts that are not frozen.
        weights: path or URL of a MicroNet checkpoint (the authors' ImageNet release or ours)
            to load before the norm conversion; "" for the authors' random initialisation.
            The classifier keys are skipped by name; any other mismatch raises
            ``micronet_backbones.CheckpointError`` and loads nothing.
    """

    def __init__(
        self,
        arch: str,
        *,
        out_features=FEATURE_NAMES,
        freeze_at: int = 0,
        norm: str = "BN",
        weights: str = "",
    ) -> None:
        super().__init__()
        arch = core.canonical_name(arch)
        out_features = list(out_features)
        if not out_features or len(set(out_features)) != len(out_features):
            raise ValueError(f"MicroNet out_features must be distinct names, got {out_features}")
        strides = sorted(_stride_of(name) for name in out_features)
        if norm not in NORMS:
            raise ValueError(f"MicroNet norm must be one of {NORMS}, got {norm!r}")

        self.micronet = core.create_model(arch, features_only=True, out_strides=strides)
        num_stages = len(self.micronet.stages)
        if not 0 <= freeze_at <= num_stages + 1:
            raise ValueError(f"MicroNet freeze_at must be in 0..{num_stages + 1}, got {freeze_at}")
        if weights:
            result = core.load_pretrained(self.micronet, weights)
            logger.info(
                "MicroNet %s: loaded %d tensors from %s (%s format); skipped %d classifier keys",
                arch,
                len(result.loaded),
                weights,
                result.source_format,
                len(result.skipped),
            )

        self._freeze(freeze_at)
        # Stages past the last returned stride never run; keep them out of the optimizer (and
        # out of DistributedDataParallel's unused-parameter check).
        for stage in self.micronet.stages[self.micronet.feature_info[-1].stage + 1 :]:
            for parameter in stage.parameters():
                parameter.requires_grad_(False)
        if norm == "FrozenBN":
            self.micronet = FrozenBatchNorm2d.convert_frozen_batchnorm(self.micronet)
        elif norm == "SyncBN":
            self.micronet = nn.SyncBatchNorm.convert_sync_batchnorm(self.micronet)

        self._out_features = [feature_name(info.stride) for info in self.micronet.feature_info]
        self._out_feature_channels = {
            feature_name(info.stride): info.channels for info in self.micronet.feature_info
        }
        self._out_feature_strides = {
            feature_name(info.stride): info.stride for info in self.micronet.feature_info
        }
        self.freeze_at = freeze_at

    def _freeze(self, freeze_at: int) -> None:
        """Stop gradients into the stem and ``stages[:freeze_at - 1]``; their BN becomes frozen."""
        frozen = ([self.micronet.stem] if freeze_at >= 1 else []) + list(
            self.micronet.stages[: max(freeze_at - 1, 0)]
        )
        for module in frozen:
            for parameter in module.parameters():
                parameter.requires_grad_(False)
        if freeze_at >= 1:
            self.micronet.stem = FrozenBatchNorm2d.convert_frozen_batchnorm(self.micronet.stem)
        for index in range(max(freeze_at - 1, 0)):
            self.micronet.stages[index] = FrozenBatchNorm2d.convert_frozen_batchnorm(
                self.micronet.stages[index]
            )

    @property
    def size_divisibility(self) -> int:
        """The largest output stride: inputs padded to it give features of exactly H / stride."""
        return max(self._out_feature_strides.values())

    def forward(self, x):
        """(N, 3, H, W) -> {name: (N, channels, H / stride, W / stride)} for ``out_features``."""
        return dict(zip(self._out_features, self.micronet(x)))

    def output_shape(self) -> dict[str, ShapeSpec]:
        return {
            name: ShapeSpec(
                channels=self._out_feature_channels[name], stride=self._out_feature_strides[name]
            )
            for name in self._out_features
        }


@BACKBONE_REGISTRY.register()
def build_micronet_backbone(cfg, input_shape: ShapeSpec) -> MicroNetBackbone:
    """The bare MicroNet from ``cfg.MODEL.MICRONET.*`` (see ``add_micronet_config``)."""
    if "MICRONET" not in cfg.MODEL:
        raise KeyError(
            "cfg.MODEL.MICRONET is missing: call micronet_backbones.detection.add_micronet_config(cfg) "
            "before merging a MicroNet config"
        )
    if input_shape.channels != 3:
        raise ValueError(
            f"MicroNet takes 3-channel images, got input_shape.channels={input_shape.channels}"
        )
    micronet_cfg = cfg.MODEL.MICRONET
    try:
        arch = core.canonical_name(micronet_cfg.ARCH)
    except ValueError as error:
        raise ValueError(f"MODEL.MICRONET.ARCH: {error}") from None
    try:
        return MicroNetBackbone(
            arch,
            out_features=micronet_cfg.OUT_FEATURES,
            freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT,
            norm=micronet_cfg.NORM,
            weights=micronet_cfg.WEIGHTS,
        )
    except core.CheckpointDownloadError as error:
        raise core.CheckpointDownloadError(
            error.url,
            error.reason,
            advice="MODEL.MICRONET.WEIGHTS names it; offline, set MODEL.MICRONET.WEIGHTS to a "
            'local copy of the file, or to "" and MODEL.WEIGHTS to the file that '
            "tools/convert_pretrained.py makes of it",
        ) from error
