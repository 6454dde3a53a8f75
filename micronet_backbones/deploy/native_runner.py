"""A whole inference form as one native call: the ``micronet::Runner`` of the kernels.

In eager PyTorch at batch 1, MicroNet's inference form spends about as long calling its ~50
layers (Python module calls, dispatcher round trips, a fresh tensor per output) as computing
them. :func:`build_runner` turns an :class:`~micronet_backbones.deploy.model.InferenceMicroNet`
into a list of native steps: the stem and each depthwise pair as a separable k x 1 / 1 x k
pair, each grouped 1 x 1 conv, each Dynamic Shift-Max; a ReLU6 and any channel permutation
after a layer become part of that layer's step (its activation, and the output planes it
writes), a residual addition part of the block's last step. ``Runner.run(x)`` then runs the
whole network in C++ and returns the logits (or the ``features_only`` maps).

The runner reads a copy of the model's tensors, packed in the order the steps read them on
huge pages (see ``kernels/csrc/runner.cpp``: a cold call's page walks and scattered reads go).
Once one of those tensors is changed in place, ``Runner.current()`` is False and
``Runner.run`` raises; the inference form then builds a new runner.

A module the runner has no step for raises :class:`RunnerUnsupported`; the inference form then
keeps its layer-by-layer path (which is also what ``torch.compile`` and ONNX export trace).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import kernels
from ..model import MIN_SIZE
from .activation import FusedReLU6
from .blocks import FusedBlock
from .permutation import ChannelPermutation, inverse_permutation
from .pointwise import FusedPointwise
from .separable import MergedSeparableConv
from .shift_max import FusedShiftMax

__all__ = ["RunnerUnsupported", "build_runner", "layer_by_layer", "runner_available"]


class RunnerUnsupported(ValueError):
    """The model holds a layer (or a chain of layers) the native runner has no step for."""


_layer_by_layer = False


def runner_available() -> bool:
    """True when the native kernels are loaded and include the runner (and no
    :func:`layer_by_layer` block is active)."""
    return not _layer_by_layer and kernels.native_available() and _runner_class() is not None


@contextlib.contextmanager
def layer_by_layer() -> Iterator[None]:
    """Within the block, inference forms run layer by layer, the runner unused (to time or test
    both paths in one process; not thread-safe)."""
    global _layer_by_layer
    previous, _layer_by_layer = _layer_by_layer, True
    try:
        yield
    finally:
        _layer_by_layer = previous


@functools.cache
def _runner_class():
    """``micronet_backbones.kernels._C.Runner``, or None (an extension built without it)."""
    try:
        from ..kernels import _C
    except ImportError:
        return None
    return getattr(_C, "Runner", None)


@dataclass
class _Step:
    """A step not yet handed to the runner: a later ReLU6 or permutation may still join it."""

    kind: str  # "separable", "pointwise", "shift_max"
    params: dict
    out_channels: int
    dest: torch.Tensor | None = None  # result channel c goes to output plane dest[c]
    relu6: bool = False
    residual: bool = False
    extra: dict = field(default_factory=dict)

    def permute(self, index: torch.Tensor) -> None:
        """Then ``y = y[:, index]``: result channel c moves to plane inverse(index)[dest[c]]."""
        inverse = inverse_permutation(index.to(torch.long).cpu())
        self.dest = inverse if self.dest is None else inverse[self.dest]


def _index_or_none(index: torch.Tensor | None) -> torch.Tensor | None:
    return None if index is None else inverse_permutation(index.to(torch.long).cpu())


class _Builder:
    """Feeds steps to a ``micronet::Runner``, one pending step at a time."""

    def __init__(self, in_channels: int) -> None:
        self.runner = _runner_class()()
        self.runner.set_input_channels(in_channels, MIN_SIZE)
        self.pending: _Step | None = None

    def flush(self) -> None:
        step, self.pending = self.pending, None
        if step is None:
            return
        p = step.params
        dest = None if step.dest is None else step.dest.contiguous()
        if step.kind == "separable":
            self.runner.add_separable(
                p["weight1"], p["bias1"], p["weight2"], p["bias2"], p["in_channels"],
                p["groups1"], p["k"], p["stride"], p["padding"], step.relu6, dest,
            )  # fmt: skip
        elif step.kind == "pointwise":
            self.runner.add_pointwise(
                p["weight"], p["bias"], p["groups"], step.relu6, dest, step.residual
            )
        else:
            spatial = p["spatial_weight"]
            self.runner.add_shift_max(
                p["fc1_weight_t"], p["fc1_bias"], p["fc2_weight_t"], p["fc2_bias"], p["low"],
                p["high"], p["shift_index"], p["num_fusions"],
                None if spatial is None else spatial.reshape(-1).contiguous(),
                float(p["spatial_bias"]), float(p["spatial_gamma"]), dest, step.residual,
            )  # fmt: skip

    def layer(self, module: nn.Module, in_channels: int) -> int:
        """Adds one layer of a fused block (or the stem); returns its output width."""
        if isinstance(module, MergedSeparableConv):
            params = module.native_params()
            if params is None:
                raise RunnerUnsupported(f"no native step for {module}")
            self.flush()
            out = params["bias2"].numel()
            self.pending = _Step("separable", {**params, "in_channels": in_channels}, out)
            if params.get("output_index") is not None:
                self.pending.permute(params["output_index"])
            return out
        if isinstance(module, FusedPointwise):
            params = module.native_params()
            self.flush()
            self.pending = _Step("pointwise", params, module.out_channels)
            return module.out_channels
        if isinstance(module, FusedShiftMax):
            params = module.native_params()
            self.flush()
            self.pending = _Step("shift_max", params, in_channels)
            if params.get("output_index") is not None:
                self.pending.permute(params["output_index"])
            return in_channels
        if isinstance(module, FusedReLU6):
            step = self.pending
            if step is None or step.kind == "shift_max" or step.residual:
                raise RunnerUnsupported("a ReLU6 that follows no convolution step")
            step.relu6 = True
            if module.output is not None:
                step.permute(module.output.index)
            return in_channels
        if isinstance(module, ChannelPermutation):
            if self.pending is None:
                raise RunnerUnsupported("a channel permutation that follows no step")
            self.pending.permute(module.index)
            return in_channels
        raise RunnerUnsupported(f"no native step for {type(module).__name__}")

    def block(self, block: FusedBlock, in_channels: int) -> int:
        if not isinstance(block, FusedBlock):
            raise RunnerUnsupported(f"no native step for {type(block).__name__}")
        self.flush()
        if block.residual:
            self.runner.begin_block()
        channels = in_channels
        for module in block.layers:
            channels = self.layer(module, channels)
        if block.residual:
            step = self.pending
            if step is None or step.kind == "separable":
                raise RunnerUnsupported("a residual block must end with a 1x1 conv or Shift-Max")
            if block.output is not None:
                step.permute(block.output.index)
            step.residual = True
        return channels


def build_runner(model: nn.Module):
    """A ``micronet_backbones.kernels._C.Runner`` running ``model`` (an ``InferenceMicroNet``,
    float32, on the CPU). ``runner.run(x)`` -> list of tensors: ``[logits]``, or the features;
    None for an input that is not a float32 CPU tensor.

    Raises :class:`RunnerUnsupported` for a model holding layers the runner has no step for, or
    buffers of another dtype or device.
    """
    from .model import InferenceMicroNet

    if not isinstance(model, InferenceMicroNet):
        raise RunnerUnsupported(f"build_runner needs an InferenceMicroNet, got {type(model)}")
    if not isinstance(model.stem, nn.Sequential):
        raise RunnerUnsupported(f"no native step for a {type(model.stem).__name__} stem")
    for name, buffer in model.named_buffers():
        if not buffer.is_cpu or (buffer.is_floating_point() and buffer.dtype is not torch.float32):
            raise RunnerUnsupported(f"the runner needs float32 CPU weights; {name} is not")
    builder = _Builder(in_channels=3)
    channels = 3
    for module in model.stem:
        channels = builder.layer(module, channels)
    for index, block in enumerate(model.blocks):
        channels = builder.block(block, channels)
        if index in model._taps:
            builder.flush()
            builder.runner.tap()
    builder.flush()
    if model.head is not None:
        head = model.head
        builder.runner.set_head(head.fc1_weight_t, head.fc1_bias, head.fc2_weight_t, head.fc2_bias)
    builder.runner.finish()
    return builder.runner
