"""Reading MMEngine's own checkpoints under ``torch.load(weights_only=True)``, inside a ``with``.

MMEngine 0.10.7 reads local checkpoints with a bare ``torch.load(filename, map_location)``,
which PyTorch >= 2.6 runs with ``weights_only=True``. The checkpoints MMEngine's ``Runner``
writes hold more than tensors: NumPy arrays and scalars (the dataset meta: keypoint colours,
OKS sigmas, class names; logged values) and ``mmengine.logging.HistoryBuffer`` objects (the
message hub, whose pickles rebuild their statistics methods with ``getattr(HistoryBuffer,
name)``). So ``Runner`` ``load_from`` / ``--resume`` and the toolboxes' ``init_model(config,
checkpoint)`` fail with "Weights only load failed" on checkpoints MMEngine has just saved.

:func:`mmengine_checkpoints` allows exactly those types for the loads inside its ``with``
block, through ``torch.serialization.safe_globals``: loading stays ``weights_only`` (arbitrary
pickled objects are still refused), MMEngine's checkpoint loader is left as it is, and loads
outside the block keep PyTorch's default allowlist. The OpenMMLab tools
(:mod:`micronet_backbones.openmmlab.cli`) run ``Runner.train()`` / ``Runner.test()`` inside it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

__all__ = ["MMENGINE_CHECKPOINT_GLOBALS", "mmengine_checkpoints"]

# The globals a checkpoint saved by MMEngine's Runner needs besides tensors (found with
# torch.serialization.get_unsafe_globals_in_checkpoint on MMPose and MMDetection checkpoints).
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


@contextlib.contextmanager
def mmengine_checkpoints() -> Iterator[None]:
    """Within the block, ``torch.load(..., weights_only=True)`` (MMEngine's loads included)
    also accepts :data:`MMENGINE_CHECKPOINT_GLOBALS`; nothing else changes, before or after."""
    with torch.serialization.safe_globals(MMENGINE_CHECKPOINT_GLOBALS):
        yield
