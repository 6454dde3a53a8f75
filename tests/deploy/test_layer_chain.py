"""The inference form cannot fall out of step with the core blocks it is made from.

It reads each block's layers in the order its ``forward`` runs them (the core's
``LayerChain.ordered_layers``): a block whose layer order changes is fused in its new order (and
stays exact), and a stem, block or layer that does not run the chain the fused op is made for is
refused loudly.
"""

from __future__ import annotations

import pytest
import torch
from deploy_helpers import TOLERANCE, randomize, relative_error

from micronet_backbones import BlockSpec
from micronet_backbones.blocks import MicroBlock, MicroBlockA, MicroBlockC, Stem
from micronet_backbones.deploy import fuse_block, fuse_stem

# Residual C block (stride 1, 16 -> 16) with a Shift-Max after every layer.
SPEC_C = BlockSpec("C", 16, 16, 3, 1, (1, 2), (4, 4), (4, 4), (2, 2, 1), 8)
# A block 8 -> 16 (depthwise expands 4x), Shift-Max after the depthwise pair and the projection.
SPEC_A = BlockSpec("A", 8, 16, 3, 1, (2, 2), (0, 4), (4, 4), (0, 2, 1), 8)


class ShuffleBeforeShiftMaxC(MicroBlockC):
    """A Micro-Block-C whose first channel shuffle runs before its Shift-Max."""

    layer_names = (
        "expand", "shuffle_expand", "act_expand", "depthwise", "act_depthwise",
        "shuffle_depthwise", "project", "act_project", "shuffle_project",
    )  # fmt: skip


class ShuffleBeforeShiftMaxA(MicroBlockA):
    """A Micro-Block-A whose shuffles run before the Shift-Max after the depthwise pair."""

    layer_names = (
        "depthwise", "shuffle_depthwise", "act_depthwise", "project", "act_project",
        "shuffle_project",
    )  # fmt: skip


@pytest.mark.parametrize(
    "original_class,reordered_class,spec",
    [(MicroBlockC, ShuffleBeforeShiftMaxC, SPEC_C), (MicroBlockA, ShuffleBeforeShiftMaxA, SPEC_A)],
)
def test_a_changed_layer_order_is_followed(original_class, reordered_class, spec):
    torch.manual_seed(0)
    original = randomize(original_class(spec))
    reordered = reordered_class(spec)
    reordered.load_state_dict(original.state_dict())
    reordered.eval()
    x = torch.randn(2, spec.in_channels, 9, 11)
    with torch.no_grad():
        expected, changed = original(x), reordered(x)
        # The new order is a different function (so the check below can fail) ...
        assert relative_error(changed, expected) > 1e-2
        # ... and the inference form of each block is exactly its own function.
        assert relative_error(fuse_block(reordered)(x), changed) < TOLERANCE
        assert relative_error(fuse_block(original)(x), expected) < TOLERANCE


def test_a_block_that_does_not_run_its_chain_is_refused():
    class ExtraActivation(MicroBlockC):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(super().forward(x))

    with pytest.raises(TypeError, match="does not run the chain of its layer_names"):
        fuse_block(ExtraActivation(SPEC_C))


def test_a_block_must_name_its_layers():
    class Unnamed(MicroBlock):
        pass

    with pytest.raises(TypeError, match="must name the layers"):
        Unnamed(SPEC_C, "C", None)


def test_a_layer_made_of_other_parts_is_refused():
    """A depthwise pair whose parts change (here: an activation in place of a conv) is not
    merged as if it were still the k x 1 / 1 x k pair."""
    block = MicroBlockC(SPEC_C)
    block.depthwise.conv_1xk = torch.nn.ReLU()
    with pytest.raises(TypeError, match="MicroFactorizedDepthwise made of"):
        fuse_block(block)


def test_a_stem_with_another_chain_is_refused():
    class ActivationFirstStem(Stem):
        layer_names = ("conv_kx1", "bn_kx1", "conv_1xk", "bn_1xk", "act", "shuffle")

    class OwnForwardStem(Stem):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return super().forward(x) * 2

    with pytest.raises(TypeError, match="Stem made of"):
        fuse_stem(ActivationFirstStem((2, 2)))
    with pytest.raises(TypeError, match="does not run the chain"):
        fuse_stem(OwnForwardStem((2, 2)))
    stem = randomize(Stem((2, 4)))
    x = torch.randn(1, 3, 33, 40)
    with torch.no_grad():
        assert relative_error(fuse_stem(stem)(x), stem(x)) < TOLERANCE
