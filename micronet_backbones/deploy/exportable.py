"""What to export: a model ready for ONNX with its input shape and output names.

``tools/export_onnx.py`` builds one :class:`Exportable` per ``--kind`` and hands it to
:func:`~micronet_backbones.deploy.onnx_export.export_onnx`; the adapters add their own kinds
(e.g. ``micronet_backbones.pose.inference.pose_exportable``).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from ..registry import create_model
from .model import to_inference_form

__all__ = ["Exportable", "backbone_exportable", "classifier_exportable"]


@dataclass
class Exportable:
    """A model ready to export: ``name`` (file stem), ``module`` (eval mode), the example
    ``input_shape`` (1, 3, H, W) and one name per output tensor."""

    name: str
    module: nn.Module
    input_shape: tuple[int, int, int, int]
    output_names: tuple[str, ...]


def classifier_exportable(
    arch: str, checkpoint: str | None = None, fused: bool = True, size=(224, 224)
) -> Exportable:
    """The ImageNet classifier ``arch`` ("m3" or "micronet_m3"): (N, 3, H, W) -> (N, classes)
    logits; its inference form when ``fused``; weights from ``checkpoint`` (authors' or ours)."""
    model = create_model(arch, pretrained=checkpoint).eval()
    module = to_inference_form(model) if fused else model
    tag = "_fused" if fused else ""
    return Exportable(f"{model.arch}_classifier{tag}", module, (1, 3, *size), ("logits",))


def backbone_exportable(
    arch: str, checkpoint: str | None = None, fused: bool = True, output_stride: int = 32,
    size=(224, 224),
) -> Exportable:  # fmt: skip
    """The ``features_only`` model ``arch`` at ``output_stride``: one output per stride
    (``stride4`` ...), each (N, C_s, H / s, W / s)."""
    model = create_model(
        arch, pretrained=checkpoint, features_only=True, output_stride=output_stride
    ).eval()
    module = to_inference_form(model) if fused else model
    names = tuple(f"stride{info.stride}" for info in model.feature_info)
    tag = f"_os{output_stride}" + ("_fused" if fused else "")
    return Exportable(f"{model.arch}_backbone{tag}", module, (1, 3, *size), names)
