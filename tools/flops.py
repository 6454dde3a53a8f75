#!/usr/bin/env python
"""Print params and fvcore multiply-adds of MicroNet-M0 ... M3 and their full-rank partners.

At 224 x 224 by default; the full-rank partner (``micronet_backbones.full_rank``) is the second
network of mutual learning (``tools/train_imagenet.py --mutual-learning``).

fvcore counts one multiply-add as one "flop" (convolutions, linear layers, BatchNorm, average
pooling); elementwise products, maxima and channel shifts are not counted. The paper's own
MAdds figures (4M, 6M, 12M, 21M) count fewer ops, hence the two columns. Counting:
``micronet_backbones.flops``.

    python tools/flops.py [micronet_m0 | m0 ...]

With ``--pose``: params and fvcore MAdds of the whole MMPose top-down model (MicroNet backbone
with the stride adjustment + Micro-Block head) of ``configs/pose/`` at 256 x 192, for M2 and
M3, beside the paper's figures (needs MMPose).

    python tools/flops.py --pose

With ``--segmentation``: params and fvcore MAdds of backbone + decode head of the MMSegmentation
models of ``configs/segmentation/`` (MicroNet-M1-M3 + MR-ASPP) and of MMSegmentation's own
LR-ASPP MobileNetV3-Large, built in the same process, at 1024 x 2048, beside the paper's
figures (needs MMSegmentation).

    python tools/flops.py --segmentation
"""

from __future__ import annotations

import argparse
from pathlib import Path

import micronet_backbones as mb
from micronet_backbones.flops import PAPER_MADDS, count_classifier, count_model

ROOT = Path(__file__).resolve().parents[1]
# The paper's whole pose models (MicroNet, Table "human pose estimation", 256 x 192).
PAPER_POSE = {"micronet_m2": (1.8e6, 116.8e6), "micronet_m3": (2.2e6, 163.2e6)}


def table(names: list[str], size: int = 224) -> str:
    """The classifiers, each beside its full-rank partner (mutual learning's second network)."""
    rows = [
        f"| arch | params | fvcore MAdds ({size}x{size}) | paper MAdds "
        "| full-rank partner params | partner fvcore MAdds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        params, madds = count_classifier(name, size)
        paper = f"{PAPER_MADDS[name] / 1e6:.0f}M" if name in PAPER_MADDS else "-"
        partner_params, partner_madds = count_model(
            mb.full_rank_partner(name).eval(), (1, 3, size, size)
        )
        rows.append(
            f"| {name} | {params:,} | {madds / 1e6:.2f}M | {paper} "
            f"| {partner_params:,} | {partner_madds / 1e6:.2f}M |"
        )
    return "\n".join(rows)


def pose_table(input_size: tuple[int, int] = (256, 192)) -> str:
    from micronet_backbones.pose.heatmap_model import COCO_CONFIGS, PoseHeatmaps, build_pose_model

    rows = [
        "| pose model (256x192) | params | paper | diff | fvcore MAdds | paper | diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, config in COCO_CONFIGS.items():
        model = build_pose_model(ROOT / config)
        params, madds = count_model(PoseHeatmaps(model.backbone, model.head), (1, 3, *input_size))
        paper_params, paper_madds = PAPER_POSE[name]
        rows.append(
            f"| {name} + Micro-Block head | {params:,} | {paper_params / 1e6:.1f}M | "
            f"{params / paper_params - 1:+.1%} | {madds / 1e6:.1f}M | {paper_madds / 1e6:.1f}M | "
            f"{madds / paper_madds - 1:+.1%} |"
        )
    return "\n".join(rows)


# The paper's segmentation figures (earlier MicroNet version, Cityscapes val, 1024 x 2048); its
# MicroNets are another family than the released M0-M3.
PAPER_SEGMENTATION = "MicroNet 2.52B MAdds, 69.1 mIoU; MobileNetV3 + LR-ASPP 2.90B, 68.4"


def segmentation_table(input_size: tuple[int, int] = (1024, 2048)) -> str:
    from micronet_backbones.segmentation.segmentor import (
        CITYSCAPES_CONFIGS,
        MMSEG_LRASPP_CONFIG,
        SegmentationLogits,
        build_segmentor,
    )

    height, width = input_size
    rows = [
        f"| segmentation model ({height}x{width}) | params | fvcore MAdds |",
        "| --- | ---: | ---: |",
    ]
    models = {f"{name} + MR-ASPP": ROOT / config for name, config in CITYSCAPES_CONFIGS.items()}
    models["MMSeg LR-ASPP MobileNetV3-Large (d8)"] = MMSEG_LRASPP_CONFIG
    for label, config in models.items():
        model = SegmentationLogits(build_segmentor(config))
        params, madds = count_model(model, (1, 3, height, width))
        rows.append(f"| {label} | {params:,} | {madds / 1e9:.2f}B |")
    return "\n".join(rows) + f"\n\nPaper (other models): {PAPER_SEGMENTATION}."


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=mb.list_models(), help="models to count")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument(
        "--pose",
        action="store_true",
        help="instead: the MMPose pose models of configs/pose at 256x192 (M2, M3)",
    )
    parser.add_argument(
        "--segmentation",
        action="store_true",
        help="instead: the MMSegmentation models of configs/segmentation and MMSeg's LR-ASPP "
        "MobileNetV3 at 1024x2048",
    )
    args = parser.parse_args(argv)
    try:
        args.names = [mb.canonical_name(name) for name in args.names]
    except ValueError as error:
        parser.error(str(error))
    if args.segmentation:
        print(segmentation_table())
        return 0
    print(pose_table() if args.pose else table(args.names, args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
