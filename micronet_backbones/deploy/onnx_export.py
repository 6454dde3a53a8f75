"""ONNX export with a dynamic batch axis, checked against onnxruntime at export time.

Needs the ``onnx`` and ``onnxruntime`` packages (imported only here, when called).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = [
    "ExportCheckError",
    "ExportReport",
    "export_onnx",
    "onnxruntime_session",
    "relative_error",
]


class ExportCheckError(RuntimeError):
    """The exported graph's outputs differ from PyTorch's beyond the tolerance."""


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_onnx` wrote and checked.

    Attributes:
        path: the .onnx file.
        input_name, output_names: graph names (batch axis 0 of each is "batch").
        input_shape: the traced input shape (spatial size fixed in the graph).
        errors: {batch size: [relative error of each output]} against PyTorch.
        tolerance: the relative tolerance the check used.
    """

    path: Path
    input_name: str
    output_names: tuple[str, ...]
    input_shape: tuple[int, ...]
    errors: dict[int, list[float]]
    tolerance: float


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (the project's tolerance measure)."""
    if actual.shape != expected.shape:
        raise ExportCheckError(f"shape {tuple(actual.shape)} != expected {tuple(expected.shape)}")
    scale = expected.abs().max().clamp_min(torch.finfo(expected.dtype).tiny)
    return ((actual - expected).abs().max() / scale).item()


def onnxruntime_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads and 1 inter-op thread,
    all graph optimisations on."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _as_tuple(outputs) -> tuple[torch.Tensor, ...]:
    if isinstance(outputs, torch.Tensor):
        return (outputs,)
    if isinstance(outputs, (list, tuple)) and all(isinstance(t, torch.Tensor) for t in outputs):
        return tuple(outputs)
    raise TypeError(f"the model must return a tensor or a list of tensors, got {type(outputs)}")


class _TupleOutputs(nn.Module):
    """Wraps a model returning a list (features) so the exporter sees a tuple."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor):
        return _as_tuple(self.model(x))


@torch.no_grad()
def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    input_shape: Sequence[int] = (1, 3, 224, 224),
    *,
    output_names: Sequence[str] | None = None,
    input_name: str = "images",
    opset: int = 17,
    tolerance: float = 1e-4,
    check_batch_sizes: Sequence[int] = (1, 3),
    seed: int = 0,
) -> ExportReport:
    """Export ``model`` (eval mode is set) to ONNX and check it with onnxruntime.

    The graph has one input (N, C, H, W) named ``input_name`` whose batch axis N is dynamic
    (H, W are those of ``input_shape``) and one output per tensor the model returns (a list
    of feature maps gives several), each with a dynamic batch axis. The TorchScript exporter
    (``dynamo=False``) is used. After writing, the file is validated with ``onnx.checker`` and
    run by onnxruntime on random inputs of each batch size in ``check_batch_sizes``; every
    output must match PyTorch's within ``tolerance`` (relative: max abs difference / max abs
    value), else :class:`ExportCheckError` is raised (the file is left for inspection).
    """
    import onnx

    model = model.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (N, C, H, W), got {tuple(input_shape)}")
    generator = torch.Generator().manual_seed(seed)
    example = torch.randn(tuple(input_shape), generator=generator)
    outputs = _as_tuple(model(example))
    if output_names is None:
        output_names = (
            ["output"] if len(outputs) == 1 else [f"output{i}" for i in range(len(outputs))]
        )
    output_names = tuple(output_names)
    if len(output_names) != len(outputs):
        raise ValueError(f"{len(output_names)} output names for {len(outputs)} outputs")

    dynamic_axes = {name: {0: "batch"} for name in (input_name, *output_names)}
    # The exporter restores the wrapper's mode afterwards, recursively: build it in eval mode.
    # The TorchScript exporter is chosen on purpose (predictable dynamic batch axis): its
    # deprecation notice is silenced.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            _TupleOutputs(model).eval(),
            (example,),
            str(path),
            input_names=[input_name],
            output_names=list(output_names),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))

    session = onnxruntime_session(path)
    errors: dict[int, list[float]] = {}
    for batch in check_batch_sizes:
        x = torch.randn((batch, *input_shape[1:]), generator=generator)
        expected = _as_tuple(model(x))
        actual = session.run(list(output_names), {input_name: x.numpy()})
        errors[batch] = [relative_error(torch.from_numpy(a), e) for a, e in zip(actual, expected)]
        bad = [(n, err) for n, err in zip(output_names, errors[batch]) if not err <= tolerance]
        if bad:
            raise ExportCheckError(
                f"{path}: onnxruntime differs from PyTorch at batch {batch}: "
                + ", ".join(f"{n} relative error {err:.3g}" for n, err in bad)
                + f" (tolerance {tolerance})"
            )
    return ExportReport(
        path=path,
        input_name=input_name,
        output_names=output_names,
        input_shape=tuple(input_shape),
        errors=errors,
        tolerance=tolerance,
    )
