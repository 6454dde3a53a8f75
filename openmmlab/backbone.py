"""The OpenMMLab MicroNet backbone, one class for every OpenMMLab toolbox.

Everything MicroNet is the core's (:func:`micronet_backbones.create_model` with
``features_only=True``); this class only speaks MMEngine: ``frozen_stages``, ``norm_eval`` and a
``Pretrained`` ``init_cfg`` that reads the authors' ImageNet checkpoint. It is a plain
:class:`mmengine.model.BaseModule` and imports no toolbox: each adapter registers it in its own
toolbox's ``MODELS`` under the name ``MicroNet`` (``micronet_backbones.pose`` in MMPose's,
``micronet_backbones.segmentation`` in MMSegmentation's, ``micronet_backbones.mmdetection`` in
MMDetection's), so the toolboxes share one implementation.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from mmengine.logging import print_log
from mmengine.model import BaseModule
from torch import nn

import micronet_backbones as mb

__all__ = ["MicroNetBackbone"]

_INIT_KEYS = {"type", "checkpoint"}


class MicroNetBackbone(BaseModule):
    """MicroNet-M0 ... M3 as an OpenMMLab backbone (registered as ``MicroNet`` by the adapters).

    Args:
        arch: "m0" ... "m3" or "micronet_m0" ... "micronet_m3"
            (:func:`micronet_backbones.canonical_name`).
        out_strides: strides of the feature maps to return, among the network's (4, 8, 16 and,
            with ``output_stride=32``, 32): the output of the last block at each stride.
            Default (16,): the deepest feature, which a heatmap head upsamples.
        output_stride: 16 (default) applies the paper's pose / segmentation setting: every
            block that runs at stride 32 in the ImageNet network runs at stride 16 instead
            (same weights, no dilation), so the deepest feature is at stride 16. 32 gives the
            ImageNet network (detection).
        frozen_stages: -1 (default) trains everything; 0 freezes the stem; k >= 1 freezes the
            stem and the first k stages (stages are the ImageNet network's strides 4, 8, 16,
            32: ``body.stages``). Frozen parts stay in eval mode and get no gradients.
        norm_eval: keep every BatchNorm in eval mode (running statistics frozen) in training.
        init_cfg: ``dict(type='Pretrained', checkpoint=PATH_OR_URL)`` loads an ImageNet
            checkpoint, the authors' release (``features.*`` / ``classifier.*`` keys, with or
            without ``module.`` and a ``state_dict`` wrapper) or ours, through the core's
            all-or-nothing loader: the classifier keys are skipped by name, any other missing,
            unexpected or mis-shaped key raises ``micronet_backbones.CheckpointError`` and loads
            nothing. Other MMEngine init types are passed to MMEngine; ``None`` keeps the
            authors' random initialisation.

    Attributes:
        arch: the canonical name ("micronet_m3").
        body: the core :class:`micronet_backbones.MicroNet` (``features_only``).
        feature_info: channels and stride of each returned map.

    ``forward``: (N, 3, H, W) -> tuple of (N, C_s, ceil(H / s), ceil(W / s)) maps, one per
    ``out_strides`` entry, in increasing stride (any H and W; every convolution pads).
    """

    def __init__(
        self,
        arch: str = "m3",
        out_strides: Sequence[int] = (16,),
        output_stride: int = 16,
        frozen_stages: int = -1,
        norm_eval: bool = False,
        init_cfg: dict | list | None = None,
    ) -> None:
        if isinstance(init_cfg, dict) and init_cfg.get("type") == "Pretrained":
            unknown = set(init_cfg) - _INIT_KEYS
            if unknown or not init_cfg.get("checkpoint"):
                raise ValueError(
                    "MicroNet's Pretrained init_cfg takes exactly dict(type='Pretrained', "
                    f"checkpoint=PATH_OR_URL), got {init_cfg}"
                )
        super().__init__(init_cfg=init_cfg)
        try:
            self.arch = mb.canonical_name(arch)
        except ValueError as error:
            raise ValueError(f"MicroNet backbone arch: {error}") from None
        self.body = mb.create_model(
            self.arch,
            features_only=True,
            out_strides=tuple(out_strides),
            output_stride=output_stride,
        )
        self.feature_info = self.body.feature_info
        num_stages = len(self.body.stages)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(
                f"frozen_stages must be in [-1, {num_stages}] for {self.arch}, got {frozen_stages}"
            )
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self._freeze_stages()

    def _frozen_modules(self) -> list[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.body.stem, *self.body.stages[: self.frozen_stages]]

    def _freeze_stages(self) -> None:
        for module in self._frozen_modules():
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        """Load the ``Pretrained`` checkpoint with the core's loader, else MMEngine's init."""
        if isinstance(self.init_cfg, dict) and self.init_cfg.get("type") == "Pretrained":
            checkpoint = self.init_cfg["checkpoint"]
            result = mb.load_pretrained(self.body, checkpoint)
            print_log(
                f"MicroNet {self.arch}: loaded {len(result.loaded)} tensors from {checkpoint} "
                f"({result.source_format} format), skipped {len(result.skipped)} classifier "
                "tensors",
                logger="current",
            )
            self._is_init = True
            return
        super().init_weights()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.body(x))

    def train(self, mode: bool = True) -> MicroNetBackbone:
        """Set the mode; frozen stages stay in eval mode, and every BatchNorm with
        ``norm_eval``."""
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self
