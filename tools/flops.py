#!/usr/bin/env python
"""Print params and fvcore multiply-adds of MicroNet-M0 ... M3 at 224 x 224.

fvcore counts one multiply-add as one "flop" (convolutions, linear layers, BatchNorm, average
pooling); elementwise products, maxima and channel shifts are not counted. The paper's own
MAdds figures (4M, 6M, 12M, 21M) count fewer ops, hence the two columns.

    python tools/flops.py [micronet_m0 ...]

With ``--pose``: params and fvcore MAdds of the whole MMPose top-down model (MicroNet backbone
with the stride adjustment + Micro-Block head) of ``configs/pose/`` at 256 x 192, for M2 and
M3, beside the paper's figures (needs MMPose).

    python tools/flops.py --pose
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch

try:
    import micronet_backbones as mb
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import micronet_backbones as mb

PAPER_MADDS = {"micronet_m0": "4M", "micronet_m1": "6M", "micronet_m2": "12M", "micronet_m3": "21M"}


def count(name: str, size: int = 224) -> tuple[int, int]:
    """(parameters, fvcore multiply-adds) of the classifier ``name`` on a 1 x 3 x size x size input."""
    with warnings.catch_warnings():  # fvcore's import touches the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

    model = mb.create_model(name).eval()
    params = sum(p.numel() for p in model.parameters())
    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, size, size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return params, int(analysis.total())


def table(names: list[str], size: int = 224) -> str:
    rows = [f"| arch | params | fvcore MAdds ({size}x{size}) | paper MAdds |", "| --- | ---: | ---: | ---: |"]
    for name in names:
        params, madds = count(name, size)
        rows.append(f"| {name} | {params:,} | {madds / 1e6:.2f}M | {PAPER_MADDS.get(name, '-')} |")
    return "\n".join(rows)


# Pose: the paper's whole-model figures (MicroNet, Table "human pose estimation", 256 x 192).
ROOT = Path(__file__).resolve().parents[1]
POSE_CONFIGS = {
    "micronet_m2": ROOT / "configs/pose/micronet-m2_8xb32-250e_coco-256x192.py",
    "micronet_m3": ROOT / "configs/pose/micronet-m3_8xb32-250e_coco-256x192.py",
}
PAPER_POSE = {"micronet_m2": (1.8e6, 116.8e6), "micronet_m3": (2.2e6, 163.2e6)}


def count_pose(config: str | Path, input_size: tuple[int, int] = (256, 192)) -> tuple[int, int]:
    """(parameters, fvcore multiply-adds) of the MMPose model of ``config`` (backbone + head)
    on a 1 x 3 x H x W input, ``input_size`` = (H, W)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis
        from mmengine.config import Config
        from mmpose.registry import MODELS
        from mmpose.utils import register_all_modules

        import micronet_backbones.pose  # noqa: F401  (registers MicroNet and MicroBlockHead)

    register_all_modules()
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None  # counting needs no ImageNet weights
    model = MODELS.build(cfg.model).eval()

    class BackboneAndHead(torch.nn.Module):
        def __init__(self, pose_model):
            super().__init__()
            self.pose_model = pose_model

        def forward(self, x):
            return self.pose_model.head(self.pose_model.extract_feat(x))

    params = sum(p.numel() for p in model.parameters())
    with warnings.catch_warnings():  # tracing warns about the head's shape checks
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(BackboneAndHead(model), torch.zeros(1, 3, *input_size))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        madds = int(analysis.total())
    return params, madds


def pose_table() -> str:
    rows = [
        "| pose model (256x192) | params | paper | diff | fvcore MAdds | paper | diff |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, config in POSE_CONFIGS.items():
        params, madds = count_pose(config)
        paper_params, paper_madds = PAPER_POSE[name]
        rows.append(
            f"| {name} + Micro-Block head | {params:,} | {paper_params / 1e6:.1f}M | "
            f"{params / paper_params - 1:+.1%} | {madds / 1e6:.1f}M | {paper_madds / 1e6:.1f}M | "
            f"{madds / paper_madds - 1:+.1%} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=mb.list_models(), help="models to count")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    parser.add_argument(
        "--pose", action="store_true",
        help="instead: the MMPose pose models of configs/pose at 256x192 (M2, M3)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    print(pose_table() if args.pose else table(args.names, args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
