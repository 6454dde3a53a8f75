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
for checking the export; not for predictions). The models are built by
``micronet_backbones.deploy.exportable`` and ``micronet_backbones.pose.inference``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from micronet_backbones import canonical_name
from micronet_backbones.deploy.exportable import backbone_exportable, classifier_exportable
from micronet_backbones.deploy.onnx_export import export_onnx

KINDS = ("classifier", "backbone", "pose")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="micronet_m3", help="micronet_m0 ... m3 (or m0 ... m3)")
    parser.add_argument("--kind", choices=KINDS, default="classifier")
    parser.add_argument(
        "--checkpoint",
        help="weights: ImageNet checkpoint (classifier/backbone, authors' or ours) or MMPose "
        "checkpoint (pose)",
    )
    parser.add_argument("--pose-config", help="MMPose config (for --kind pose)")
    parser.add_argument("--output-stride", type=int, default=32, help="backbone: 32, 16 or 8")
    parser.add_argument(
        "--size", type=int, nargs=2, metavar=("H", "W"),
        help="input size (default 224 224; pose: 256 192)",
    )  # fmt: skip
    parser.add_argument(
        "--original", action="store_true",
        help="export the eval-mode model as built instead of its inference form",
    )  # fmt: skip
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--output", help="output .onnx path (default output/onnx/<name>.onnx)")
    args = parser.parse_args(argv)
    try:
        args.model = canonical_name(args.model)
    except ValueError as error:
        parser.error(f"--model: {error}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    fused = not args.original
    if args.kind == "pose":
        if not args.pose_config:
            print("error: --kind pose needs --pose-config", file=sys.stderr)
            return 2
        from micronet_backbones.pose.inference import pose_exportable

        item = pose_exportable(args.pose_config, args.checkpoint, fused, args.size or (256, 192))
    elif args.kind == "backbone":
        item = backbone_exportable(
            args.model, args.checkpoint, fused, args.output_stride, args.size or (224, 224)
        )
    else:
        item = classifier_exportable(args.model, args.checkpoint, fused, args.size or (224, 224))
    path = Path(args.output or f"output/onnx/{item.name}.onnx")
    report = export_onnx(
        item.module, path, item.input_shape, output_names=item.output_names, opset=args.opset
    )
    print(
        f"wrote {report.path} ({report.path.stat().st_size / 1e6:.2f} MB), input "
        f"{report.input_name} (batch, {', '.join(map(str, report.input_shape[1:]))}), outputs "
        f"{', '.join(report.output_names)}"
    )
    for batch, errors in report.errors.items():
        print(
            f"  onnxruntime vs PyTorch at batch {batch}: max relative error {max(errors):.2e} "
            f"(tolerance {report.tolerance:g})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
