"""Channel permutations (channel shuffles and their compositions) for the inference form.

A :class:`ChannelPermutation` ``p`` of C channels maps (N, C, H, W) to ``x[:, p.index]``. The
MicroNet shuffles are "axis permutations": ``index = arange(C).view(dims).permute(order)
.reshape(C)`` (a shuffle with G groups is ``dims = (G, C / G)``, ``order = (1, 0)``), and so are
most compositions of two of them. Such a permutation costs nothing in eager PyTorch when the
elementwise op that produces the tensor writes its result through a strided view of the output
(:meth:`ChannelPermutation.write`); any other permutation is an ``index_select`` (one copy).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

__all__ = ["ChannelPermutation", "exporting", "fixed_shape", "inverse_permutation"]


def exporting() -> bool:
    """True while tracing or exporting (ONNX): the inference form then writes no ``out=``
    through strided views and picks the ops onnxruntime runs fastest. (In-place ops on fresh
    tensors, never on shared ones, are used in both modes: the exporter makes them functional.)"""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _functional() -> bool:
    """Exporting, or compiling (``torch.compile`` fuses elementwise ops itself and cannot trace
    ``out=`` writes through strided views): write the permutation as a separate op."""
    return exporting() or torch.compiler.is_compiling()


def fixed_shape(x: torch.Tensor) -> tuple[int, ...]:
    """``x.shape`` as plain ints. While tracing, the sizes become constants of the graph (its
    spatial size is the traced one; the batch axis stays dynamic wherever ``-1`` is used
    instead of N), so the exported graph has no shape arithmetic."""
    if not torch.jit.is_tracing():
        return tuple(x.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        return tuple(int(size) for size in x.shape)


def inverse_permutation(index: torch.Tensor) -> torch.Tensor:
    """(C,) long -> (C,) long ``inverse`` with ``inverse[index[i]] == i``: ``x[:, index]``
    is undone by ``[:, inverse]``."""
    inverse = torch.empty_like(index)
    inverse[index] = torch.arange(index.numel())
    return inverse


def _axis_decomposition(index: torch.Tensor) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """(dims, order) with ``arange(C).view(dims).permute(order).reshape(-1) == index``, or None.

    The axes of the permuted view are peeled from the innermost outwards: each is the longest
    run ``index[j] = index[0] + j * stride`` that tiles the remaining index.
    """
    channels = index.numel()
    axes: list[tuple[int, int]] = []  # (size, stride in the source), innermost first
    rest = index
    while rest.numel() > 1:
        stride = int(rest[1] - rest[0])
        if stride <= 0:
            return None
        size = None
        for candidate in range(rest.numel(), 1, -1):
            if rest.numel() % candidate:
                continue
            rows = rest.view(-1, candidate)
            expected = rows[:, :1] + torch.arange(candidate) * stride
            if torch.equal(rows, expected):
                size = candidate
                break
        if size is None:
            return None
        axes.append((size, stride))
        rest = rest.view(-1, size)[:, 0]
    if rest.numel() != 1 or int(rest[0]) != 0:
        return None
    # Source axes in row-major order are the peeled axes sorted by decreasing stride.
    outer_first = list(reversed(axes))
    source = sorted(range(len(outer_first)), key=lambda k: -outer_first[k][1])
    dims = tuple(outer_first[k][0] for k in source)
    order = tuple(source.index(k) for k in range(len(outer_first)))
    rebuilt = torch.arange(channels).view(dims).permute(order).reshape(-1)
    return (dims, order) if torch.equal(rebuilt, index) else None


class ChannelPermutation(nn.Module):
    """y = x[:, index] on (N, C, H, W) tensors, as cheap as the index allows.

    ``forward(x)`` gives the permuted copy. :meth:`write` runs an elementwise op and stores its
    result permuted, at no extra pass when the permutation is an axis permutation.
    """

    def __init__(self, index: torch.Tensor) -> None:
        super().__init__()
        index = torch.as_tensor(index, dtype=torch.long).flatten()
        if not torch.equal(index.sort().values, torch.arange(index.numel())):
            raise ValueError("ChannelPermutation needs a permutation of 0 .. C - 1")
        self.channels = index.numel()
        self.register_buffer("index", index, persistent=False)
        decomposition = _axis_decomposition(index)
        self.dims, self.order = decomposition if decomposition else (None, None)
        if decomposition:
            # The output, viewed with the permuted dims, read in the source's axis order.
            self._out_dims = tuple(self.dims[k] for k in self.order)
            inverse = [self.order.index(k) for k in range(len(self.order))]
            self._out_to_source = (0, *(1 + k for k in inverse), len(inverse) + 1)

    @staticmethod
    def identity_or_none(index: torch.Tensor) -> ChannelPermutation | None:
        """A permutation, or None for the identity."""
        index = torch.as_tensor(index).flatten()
        if torch.equal(index, torch.arange(index.numel())):
            return None
        return ChannelPermutation(index)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dims is None or exporting():
            return x.index_select(1, self.index)  # ONNX: one Gather
        _, c, h, w = x.shape
        permute = (0, *(1 + k for k in self.order), len(self.order) + 1)
        return x.reshape(-1, *self.dims, h * w).permute(permute).reshape(-1, c, h, w)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, ...) -> (N, *dims, rest): the source tensor viewed along the permutation's axes
        ((N, 1, ...) -> (N, 1, ..., 1, rest) for a tensor broadcast over the channels)."""
        if x.shape[1] == 1 and self.channels != 1:
            return x.reshape(x.shape[0], *(1 for _ in self.dims), -1)
        return x.reshape(x.shape[0], *self.dims, -1)

    def view_of_output(self, y: torch.Tensor) -> torch.Tensor:
        """A strided (N, *dims, rest) view of the contiguous permuted tensor ``y`` such that
        element ``[n, i, p]`` of the view is where source channel ``i`` goes."""
        return y.view(y.shape[0], *self._out_dims, -1).permute(self._out_to_source)

    def write(self, op, *inputs: torch.Tensor, shape: torch.Size, **kwargs) -> torch.Tensor:
        """``self(op(*inputs, **kwargs))`` for an elementwise ``op`` with ``out=``.

        ``inputs`` are (N, C, ...) tensors broadcastable to ``shape`` (N, C, H, W); in eager mode
        with an axis permutation the op writes straight into the permuted output.
        """
        if self.dims is None or _functional():
            return self(op(*inputs, **kwargs))
        out = torch.empty(shape, dtype=inputs[0].dtype, device=inputs[0].device)
        op(*(self.split(t) for t in inputs), **kwargs, out=self.view_of_output(out))
        return out

    def add_to(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """``self(x) + residual`` (``residual`` already in the permuted order), in one pass."""
        if self.dims is None or _functional():
            return self(x) + residual
        out = torch.empty_like(residual)
        torch.add(self.split(x), self.view_of_output(residual), out=self.view_of_output(out))
        return out

    def extra_repr(self) -> str:
        if self.dims is None:
            return f"channels={self.channels}, gather"
        return f"channels={self.channels}, dims={self.dims}, order={self.order}"
