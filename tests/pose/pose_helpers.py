"""Helpers of the pose tests (a module of its own, not conftest.py, so that its name is unique
when several test folders are collected together)."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs" / "pose"
M3_COCO = CONFIG_DIR / "micronet-m3_8xb32-250e_coco-256x192.py"
M2_COCO = CONFIG_DIR / "micronet-m2_8xb32-250e_coco-256x192.py"


def point_config_at(cfg, data_root: Path):
    """Point every dataset and evaluator of an MMPose config at a generated set."""
    root = str(data_root).rstrip("/") + "/"
    for key, split in (
        ("train_dataloader", "train"),
        ("val_dataloader", "val"),
        ("test_dataloader", "val"),
    ):
        loader = cfg.get(key)
        if loader is None:
            continue
        loader.dataset.data_root = root
        loader.dataset.ann_file = f"annotations/person_keypoints_{split}.json"
        loader.dataset.data_prefix = dict(img=f"images/{split}/")
        loader.num_workers = 0
        loader.persistent_workers = False
    for key in ("val_evaluator", "test_evaluator"):
        if cfg.get(key) is not None:
            cfg[key].ann_file = root + "annotations/person_keypoints_val.json"
    return cfg
