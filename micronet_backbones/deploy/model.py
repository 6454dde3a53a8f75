"""The inference form of a whole MicroNet: classifier or ``features_only`` backbone."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import kernels
from ..model import ClassifierHead, MicroNet, check_image_batch
from . import native_runner
from .blocks import fuse_block, fuse_stem
from .folding import fold_linear_batchnorm

__all__ = ["FusedClassifierHead", "InferenceMicroNet", "to_inference_form"]


class FusedClassifierHead(nn.Module):
    """(N, C, H, W) -> (N, num_classes): the core :class:`ClassifierHead`, BatchNorm1d folded
    into both linear layers, dropout (eval: identity) dropped.

    ReLU6 -> average pool -> h-swish -> fc1 -> h-swish -> fc2 -> h-swish. The ReLU6 runs in
    place on its input (the last block's output, read by nothing else).
    """

    def __init__(self, head: ClassifierHead) -> None:
        super().__init__()
        w1, b1 = fold_linear_batchnorm(head.fc1, head.bn1)
        w2, b2 = fold_linear_batchnorm(head.fc2, head.bn2)
        dtype = head.fc1.weight.dtype
        self.register_buffer("fc1_weight_t", w1.t().contiguous().to(dtype))
        self.register_buffer("fc1_bias", b1.to(dtype))
        self.register_buffer("fc2_weight_t", w2.t().contiguous().to(dtype))
        self.register_buffer("fc2_bias", b2.to(dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.clamp_(0.0, 6.0).mean((2, 3))
        hidden = F.hardswish(torch.addmm(self.fc1_bias, F.hardswish(pooled), self.fc1_weight_t))
        return F.hardswish(torch.addmm(self.fc2_bias, hidden, self.fc2_weight_t))


class InferenceMicroNet(nn.Module):
    """A :class:`~micronet_backbones.model.MicroNet` in inference form (see
    :func:`to_inference_form`). Same inputs and outputs as the model it was made from:
    (N, 3, H, W) -> logits (N, num_classes), or with ``features_only`` a list of feature maps
    described by ``feature_info``. Holds buffers only (no parameters): it is not trainable.

    With the native kernels built, an eager float32 CPU call runs the whole network as one
    ``micronet::Runner`` call (:mod:`~micronet_backbones.deploy.native_runner`, built on first
    use); :meth:`execution_path` says which path a call takes. ``torch.compile`` and ONNX export
    trace the layer-by-layer path (the same function; the layers use the native per-layer
    operators where they apply).
    """

    def __init__(self, model: MicroNet) -> None:
        super().__init__()
        if not isinstance(model, MicroNet):
            raise TypeError(f"to_inference_form needs a MicroNet, got {type(model).__name__}")
        self.arch = model.arch
        self.features_only = model.features_only
        self.feature_info = model.feature_info
        self.stage_info = model.stage_info
        self.num_features = model.num_features
        self.stem = fuse_stem(model.stem)
        blocks, stage_ends = [], []
        for stage in model.stages:
            blocks.extend(fuse_block(block) for block in stage)
            stage_ends.append(len(blocks) - 1)
        if self.features_only:
            # Blocks after the last tap compute nothing that is returned: dropped.
            taps = [stage_ends[info.stage] for info in self.feature_info]
            blocks = blocks[: taps[-1] + 1]
            self._taps = frozenset(taps)
            self.head = None
        else:
            self._taps = frozenset()
            self.head = FusedClassifierHead(model.head)
        self.blocks = nn.Sequential(*blocks)
        self._runner = None  # micronet::Runner, built on first native call
        self._runner_error: str | None = None
        self.eval()

    def execution_path(self, x: torch.Tensor) -> str:
        """How ``self(x)`` runs: ``"runner"`` (one native call for the whole network),
        ``"layers (native kernels)"`` or ``"layers (pytorch)"``."""
        if x.dtype is torch.float32 and x.is_cpu and self._native_runner() is not None:
            return "runner"
        return "layers (native kernels)" if kernels.native_available() else "layers (pytorch)"

    def _native_runner(self):
        """The runner, or None: eager (not tracing, exporting or compiling), native kernels
        built with the runner, and every layer supported. (The runner itself takes only
        float32 CPU input.)

        Kept to a few cheap tests: called between other work, each Python operation here can
        cost microseconds of cache misses, and M0's whole network takes about 0.5 ms. (ONNX
        export traces, with torch.jit or torch.export, so the tracing and compiling flags
        cover it.)"""
        if (
            torch.compiler.is_compiling()  # first: Dynamo cannot trace the next one
            or torch._C._is_tracing()
            or not native_runner.runner_available()
        ):
            return None
        if self._runner is None and self._runner_error is None:
            try:
                self._runner = native_runner.build_runner(self)
            except native_runner.RunnerUnsupported as error:
                self._runner_error = str(error)
        return self._runner

    def _apply(self, fn, recurse=True):
        # Moving or casting the buffers invalidates the runner, which holds a copy of them.
        self._runner, self._runner_error = None, None
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs):
        self._runner, self._runner_error = None, None
        return super()._load_from_state_dict(*args, **kwargs)

    def __getstate__(self):
        # (pickle, deepcopy) the runner is a native object: rebuilt on first use.
        state = self.__dict__.copy()
        state["_runner"], state["_runner_error"] = None, None
        return state

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        runner = self._native_runner()
        if runner is not None:
            try:
                outputs = runner.run(x)  # None unless x is a float32 CPU tensor
            except RuntimeError:
                check_image_batch(x)  # a bad shape: the ValueError the layers raise
                if runner.current():
                    raise
                self._runner = None  # a buffer was changed in place: a new runner
                return self.forward(x)
            if outputs is not None:
                return list(outputs) if self.features_only else outputs[0]
        check_image_batch(x)
        x = self.stem(x)
        if not self.features_only:
            return self.head(self.blocks(x))
        features = []
        for index, block in enumerate(self.blocks):
            x = block(x)
            if index in self._taps:
                features.append(x)
        return features


@torch.no_grad()
def to_inference_form(model: MicroNet) -> InferenceMicroNet:
    """The inference form of ``model``: same outputs as ``model.eval()`` (float rounding only).

    BatchNorms are folded into the convolutions and the classifier's linear layers, each
    k x 1 / 1 x k depthwise pair is one k x k depthwise conv, grouped 1x1 convs are batched
    matrix products, channel shuffles are folded into weights or written by the op before them,
    Dynamic Shift-Max uses :class:`~micronet_backbones.deploy.shift_max.FusedShiftMax`, and a
    ``features_only`` model stops at its last tap. ``model`` itself is left unchanged (its BN
    running statistics are used whatever its mode).
    """
    return InferenceMicroNet(model)
