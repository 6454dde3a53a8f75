"""MMEngine checkpoints under ``torch.load(weights_only=True)`` (PyTorch >= 2.6's default).

MMEngine 0.10.7 reads local checkpoints with a bare ``torch.load(filename, map_location)``,
which PyTorch >= 2.6 runs with ``weights_only=True``. The checkpoints MMEngine itself writes for
MMPose models hold more than tensors: NumPy arrays and scalars (the dataset meta: keypoint
colours, OKS sigmas; logged values) and ``mmengine.logging.HistoryBuffer`` objects (the message
hub, whose pickles rebuild their statistics methods with ``getattr(HistoryBuffer, name)``).
So ``mmpose.apis.init_model(config, checkpoint)``, ``Runner`` ``load_from`` and ``--resume``
fail with "Weights only load failed" on checkpoints MMEngine has just saved.

Importing ``micronet_backbones.pose`` replaces MMEngine's local-file checkpoint loader (through
MMEngine's own extension point, ``CheckpointLoader.register_scheme``) by one that still loads
with ``weights_only=True`` but allows exactly those types for the duration of the call
(:data:`MMENGINE_CHECKPOINT_GLOBALS`). Nothing else changes: other ``torch.load`` calls keep
PyTorch's default allowlist, and arbitrary pickled objects are still refused.
"""

from __future__ import annotations

import os.path as osp

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

__all__ = ["MMENGINE_CHECKPOINT_GLOBALS", "load_from_local_weights_only"]

# The globals a checkpoint saved by MMEngine's Runner for an MMPose model needs besides
# tensors (found with torch.serialization.get_unsafe_globals_in_checkpoint).
MMENGINE_CHECKPOINT_GLOBALS = [
    np.ndarray,
    np.dtype,
    np.ndarray(0).__reduce__()[0],  # numpy's _reconstruct (numpy._core.multiarray in NumPy 2)
    np.float64(0).__reduce__()[0],  # numpy's scalar
    # the dtype classes of booleans, integers and floats (numpy.dtypes.Float64DType, ...)
    *sorted({type(np.dtype(code)) for code in "?bBhHiIlLqQefd"}, key=lambda t: t.__name__),
    HistoryBuffer,
    getattr,  # HistoryBuffer pickles its statistics methods as getattr(HistoryBuffer, name)
]


def load_from_local_weights_only(filename: str, map_location=None):
    """MMEngine's local checkpoint loader with ``weights_only=True`` and MMEngine's types."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f"{filename} can not be found.")
    with torch.serialization.safe_globals(MMENGINE_CHECKPOINT_GLOBALS):
        return torch.load(filename, map_location=map_location, weights_only=True)


CheckpointLoader.register_scheme(prefixes="", loader=load_from_local_weights_only, force=True)
