"""Helpers of the segmentation tests (a module of its own, not conftest.py, so that its name
is unique when several test folders are collected together)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs" / "segmentation"
CITYSCAPES = {
    arch: CONFIG_DIR / f"micronet-{arch}_mraspp_4xb4-240e_cityscapes-512x1024.py"
    for arch in ("m1", "m2", "m3")
}
SYNTHETIC = CONFIG_DIR / "micronet-m3_mraspp_synthetic-128x128.py"
# channels of the (stride-8, stride-16) features with output_stride=16
FEATURE_CHANNELS = {"m0": (12, 384), "m1": (16, 576), "m2": (24, 768), "m3": (24, 864)}


def data_options(root: Path) -> list[str]:
    """``--cfg-options`` pointing the synthetic config's loaders at a generated set."""
    root = str(root).rstrip("/") + "/"
    return [f"{split}_dataloader.dataset.data_root={root}" for split in ("train", "val", "test")]
