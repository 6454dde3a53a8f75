#!/usr/bin/env python
"""Export MicroNet to ONNX (dynamic batch axis), checked against onnxruntime at export time.

What can be exported (``--kind``):

* ``classifier``: (N, 3, H, W) images -> (N, num_classes) logits;
* ``backbone``:   ``features_only`` model -> one output per stride (``stride4`` ...);
  ``--output-stride 16`` gives the pose setting;
* ``pose``:       an MMPose top-down model from its config (MicroNet backbone + MicroBlockHead)
  -> (N, K, H / 4, W / 4) heatmaps; needs MMPose (``micronet_backbones.pose``).

By default the exact inference form (``micronet_backbones.deploy``) is exported; ``--original``
exports the eval-mode model as built. Every export is run by onnxruntime at batch sizes 1 and 3
and must match PyTorch within 1e-4 relative, or the script fails.

Examples::

    python tools/export_onnx.py --model micronet_m3 --kind classifier --checkpoint micronet-m3.pth
    python tools/export_onnx.py --model m0 --kind backbone --output-stride 16
    python tools/export_onnx.py --kind pose --pose-config configs/pose/micronet-m3_8xb32-250e_coco-256x192.py \
        --checkpoint work_dirs/pose/best.pth

Without ``--checkpoint`` the weights are the authors' random initialisation (fine for timing and
for checking the export; not for predictions).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import micronet_backbones as mb
from micronet_backbones.deploy import fuse_heatmap_model, to_inference_form
from micronet_backbones.deploy.onnx_export import export_onnx

KINDS = ("classifier", "backbone", "pose")


@dataclass
class Exportable:
    """A model ready to export: the module, its input shape and output names."""

    name: str
    module: nn.Module
    input_shape: tuple[int, int, int, int]
    output_names: tuple[str, ...]


def model_name(name: str) -> str:
    """'m3' or 'micronet_m3' -> 'micronet_m3'."""
    return name if name.startswith("micronet_") else f"micronet_{name}"


def build_classifier(name: str, checkpoint: str | None, fused: bool, size=(224, 224)) -> Exportable:
    model = mb.create_model(model_name(name), pretrained=checkpoint).eval()
    module = to_inference_form(model) if fused else model
    tag = "_fused" if fused else ""
    return Exportable(f"{model.arch}_classifier{tag}", module, (1, 3, *size), ("logits",))


def build_backbone(
    name: str, checkpoint: str | None, fused: bool, output_stride: int = 32, size=(224, 224)
) -> Exportable:
    model = mb.create_model(
        model_name(name), pretrained=checkpoint, features_only=True, output_stride=output_stride
    ).eval()
    module = to_inference_form(model) if fused else model
    names = tuple(f"stride{info.stride}" for info in model.feature_info)
    tag = f"_os{output_stride}" + ("_fused" if fused else "")
    return Exportable(f"{model.arch}_backbone{tag}", module, (1, 3, *size), names)


class PoseHeatmaps(nn.Module):
    """An MMPose top-down model's tensor path: images -> backbone -> head -> heatmaps."""

    def __init__(self, backbone: nn.Module, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_pose_model(config: str, checkpoint: str | None = None) -> nn.Module:
    """The MMPose model a config describes (``custom_imports`` honoured), eval mode, with the
    weights of an MMPose ``checkpoint`` if given (else the random initialisation; the config's
    ImageNet ``Pretrained`` backbone init is not run)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint
    from mmpose.registry import MODELS

    cfg = Config.fromfile(config)
    init_default_scope(cfg.get("default_scope", "mmpose"))
    model = MODELS.build(cfg.model)
    if checkpoint is not None:
        load_checkpoint(model, checkpoint, map_location="cpu", strict=True)
    return model.eval()


def build_pose(config: str, checkpoint: str | None, fused: bool, size=(256, 192)) -> Exportable:
    """Backbone + MicroBlockHead of an MMPose config. The graph's input is the normalised image
    (what MMPose's data preprocessor gives the backbone), its output the raw heatmaps."""
    from micronet_backbones.pose import MicroBlockHead, MicroNetBackbone

    model = build_pose_model(config, checkpoint)
    backbone, head = model.backbone, model.head
    if not isinstance(backbone, MicroNetBackbone) or not isinstance(head, MicroBlockHead):
        raise TypeError(
            f"{config}: expected a MicroNet backbone and a MicroBlockHead, got "
            f"{type(backbone).__name__} and {type(head).__name__}"
        )
    if getattr(model, "with_neck", False):
        raise TypeError(f"{config}: a neck between backbone and head is not supported")
    if fused:
        module = fuse_heatmap_model(
            backbone.body, [head.stride8, head.stride4], head.final_layer, head.align_corners
        )
    else:
        module = PoseHeatmaps(backbone, head).eval()
    tag = "_fused" if fused else ""
    return Exportable(f"{backbone.arch}_pose{tag}", module, (1, 3, *size), ("heatmaps",))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="micronet_m3", help="micronet_m0 ... m3 (or m0 ... m3)")
    parser.add_argument("--kind", choices=KINDS, default="classifier")
    parser.add_argument("--checkpoint", help="weights: ImageNet checkpoint (classifier/backbone, "
                        "authors' or ours) or MMPose checkpoint (pose)")
    parser.add_argument("--pose-config", help="MMPose config (for --kind pose)")
    parser.add_argument("--output-stride", type=int, default=32, help="backbone: 32, 16 or 8")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="input size (default 224 224; pose: 256 192)")
    parser.add_argument("--original", action="store_true",
                        help="export the eval-mode model as built instead of its inference form")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--output", help="output .onnx path (default output/onnx/<name>.onnx)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    fused = not args.original
    if args.kind == "pose":
        if not args.pose_config:
            print("error: --kind pose needs --pose-config", file=sys.stderr)
            return 2
        item = build_pose(args.pose_config, args.checkpoint, fused, args.size or (256, 192))
    elif args.kind == "backbone":
        item = build_backbone(args.model, args.checkpoint, fused, args.output_stride,
                              args.size or (224, 224))
    else:
        item = build_classifier(args.model, args.checkpoint, fused, args.size or (224, 224))
    path = Path(args.output or f"output/onnx/{item.name}.onnx")
    report = export_onnx(item.module, path, item.input_shape, output_names=item.output_names,
                         opset=args.opset)
    print(f"wrote {report.path} ({report.path.stat().st_size / 1e6:.2f} MB), input "
          f"{report.input_name} (batch, {', '.join(map(str, report.input_shape[1:]))}), outputs "
          f"{', '.join(report.output_names)}")
    for batch, errors in report.errors.items():
        worst = max(errors)
        print(f"  onnxruntime vs PyTorch at batch {batch}: max relative error {worst:.2e} "
              f"(tolerance {report.tolerance:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
