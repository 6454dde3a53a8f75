"""Native fused operators for MicroNet (C++ in ``csrc/``) with their PyTorch fallback.

``torch.ops.micronet.*`` (registered with ``torch.library``, fake kernels included, so
``torch.compile`` and ``torch.export`` see one op):

* ``fused_shift_max``: the inference form's Dynamic Shift-Max (hyper-function, K x J
  shift-fuse-max, spatial attention, the following channel permutation) in two passes over x;
* ``shift_max`` / ``shift_max_backward``: the training path, which keeps only x, the
  coefficients and the attention for backward and recomputes the rest.

Quick use::

    from micronet_backbones import kernels
    kernels.status()            # KernelStatus(backend='native' or 'pytorch', reason=...)
    y = kernels.shift_max(x, coefficients, groups)   # differentiable, memory-lean

The extension is built by ``make setup``; without it (or with ``MICRONET_KERNELS=pytorch``)
everything runs through the PyTorch fallback, the reference the tests compare against.
"""

from .loader import KernelStatus, native_available, native_op_available, pytorch_fallback, status
from .memory import saved_tensor_bytes
from .shift_max import fused_shift_max, shift_max

__all__ = [
    "KernelStatus",
    "fused_shift_max",
    "native_available",
    "native_op_available",
    "pytorch_fallback",
    "saved_tensor_bytes",
    "shift_max",
    "status",
]
