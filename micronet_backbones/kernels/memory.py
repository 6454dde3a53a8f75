"""How much memory autograd keeps for backward: the measure of the training path's saving."""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["saved_tensor_bytes"]


def saved_tensor_bytes(forward: Callable[[], object]) -> int:
    """Bytes of the distinct storages autograd saves for backward while ``forward()`` runs.

    Every tensor an autograd node saves passes through ``saved_tensors_hooks``; a storage saved
    by several nodes (an activation that two ops read) is counted once, at its full size, as it
    is held once. Parameters saved by the layers count too (they are small next to the
    activations). The graph is dropped on return.
    """
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        result = forward()
    del result
    return sum(storages.values())
