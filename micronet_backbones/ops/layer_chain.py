"""Modules that apply their layers one after the other, the layers named as data.

MicroNet's stem, its Micro-Blocks and the convolutions they are made of are chains: each applies
its layers in a fixed order. A :class:`LayerChain` names them in ``layer_names``; its
``forward`` runs that list and :meth:`LayerChain.ordered_layers` hands the same list to whoever
rebuilds the module in another form (the fused inference form, ``micronet_backbones.deploy``),
so a change to a module's layers or their order cannot leave that other form behind silently.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LayerChain"]


class LayerChain(nn.Module):
    """Base of modules whose ``forward`` applies the layers named by ``layer_names`` in turn.

    Shapes are those of the subclass: its first layer's input to its last layer's output.
    ``layer_names`` (a class attribute) names attributes holding modules; an ``nn.Sequential``
    stands for its layers in order (an empty one for none). A subclass whose ``forward`` adds
    something around the chain (e.g. a residual addition) sets ``chain_forward`` to that
    ``forward``, so the addition is part of what it declares; any further subclass overriding
    ``forward`` is then no longer described by its ``layer_names`` and
    :meth:`ordered_layers` refuses it.
    """

    layer_names: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        if not type(self).layer_names:
            raise TypeError(
                f"{type(self).__name__} must name the layers its forward runs in layer_names"
            )

    def run_layers(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the layers named by ``layer_names`` to ``x``, in order."""
        for name in self.layer_names:
            x = getattr(self, name)(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run_layers(x)

    chain_forward = forward

    def ordered_layers(self) -> list[nn.Module]:
        """The layers ``forward`` applies, in order (``nn.Sequential``s flattened).

        Raises ``TypeError`` when the class overrides ``forward`` without declaring it as its
        ``chain_forward``: its layers in order are then unknown.
        """
        if type(self).forward is not type(self).chain_forward:
            raise TypeError(
                f"{type(self).__name__} does not run the chain of its layer_names (it overrides "
                "forward), so its layers in order are unknown"
            )
        layers = []
        for name in self.layer_names:
            layer = getattr(self, name)
            layers.extend(layer if isinstance(layer, nn.Sequential) else [layer])
        return layers
