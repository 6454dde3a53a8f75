"""Which implementation of the ``micronet::`` operators is in use: native C++ or PyTorch.

The native operators live in the extension module ``micronet_backbones.kernels._C``, compiled
from ``kernels/csrc`` by ``make setup`` (setup.py, ``torch.utils.cpp_extension``). Importing it
registers ``torch.ops.micronet.*`` with PyTorch's dispatcher; :mod:`.registration` then adds the
fake (meta) kernels that ``torch.compile`` and ``torch.export`` trace. When the extension is
missing (no compiler at install time, a source checkout that was never built) or the
environment variable ``MICRONET_KERNELS=pytorch`` asks for it, every caller takes the PyTorch
fallback, which computes the same functions.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["KernelStatus", "native_available", "native_op_available", "pytorch_fallback", "status"]

ENV_VAR = "MICRONET_KERNELS"


@dataclass(frozen=True)
class KernelStatus:
    """``backend`` is ``"native"`` or ``"pytorch"``; ``reason`` says why (path or error)."""

    backend: str
    reason: str


_status: KernelStatus | None = None


def _load() -> KernelStatus:
    choice = os.environ.get(ENV_VAR, "auto").strip().lower()
    if choice not in ("auto", "native", "pytorch"):
        raise ValueError(f"{ENV_VAR} must be 'auto', 'native' or 'pytorch', got {choice!r}")
    if choice == "pytorch":
        return KernelStatus("pytorch", f"{ENV_VAR}=pytorch")
    try:
        import torch  # noqa: F401  (the extension's symbols come from libtorch)

        module = importlib.import_module("micronet_backbones.kernels._C")
    except ImportError as error:
        if choice == "native":
            raise ImportError(
                f"{ENV_VAR}=native but the extension micronet_backbones.kernels._C is not "
                f"built ({error}); run `make setup` (or `pip install -e .`) with a C++20 compiler"
            ) from error
        return KernelStatus("pytorch", f"extension not built: {error}")
    from . import registration

    registration.register_fake_kernels()
    return KernelStatus("native", module.__file__)


def status() -> KernelStatus:
    """The implementation in use (loaded once, on first call)."""
    global _status
    if _status is None:
        _status = _load()
    return _status


def native_available() -> bool:
    """True when ``torch.ops.micronet.*`` run the compiled C++ kernels."""
    return status().backend == "native"


def native_op_available(name: str) -> bool:
    """True when the native kernels are in use and include ``torch.ops.micronet.<name>`` (an
    extension built before that operator was added lacks it)."""
    return native_available() and _registered(name)


@functools.cache
def _registered(name: str) -> bool:
    """``torch.ops.micronet.<name>`` exists (looked up once, only after the extension loaded)."""
    import torch

    return hasattr(torch.ops.micronet, name)


@contextlib.contextmanager
def pytorch_fallback() -> Iterator[None]:
    """Within the block, every caller takes the PyTorch fallback as if the extension were not
    built (e.g. to time or test both paths in one process; not thread-safe)."""
    global _status
    previous = status()
    _status = KernelStatus("pytorch", "pytorch_fallback() block")
    try:
        yield
    finally:
        _status = previous
