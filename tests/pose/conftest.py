"""Shared fixtures of the pose tests: MMPose registered with our modules, generated data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs" / "pose"
M3_COCO = CONFIG_DIR / "micronet-m3_8xb32-250e_coco-256x192.py"
M2_COCO = CONFIG_DIR / "micronet-m2_8xb32-250e_coco-256x192.py"


@pytest.fixture(scope="session", autouse=True)
def mmpose_registry():
    """MMPose's modules and ours registered, MMPose as the default scope."""
    import micronet_backbones.pose  # noqa: F401  (registers MicroNet and MicroBlockHead)
    from mmpose.utils import register_all_modules

    register_all_modules(init_default_scope=True)


@pytest.fixture(scope="session")
def small_coco(tmp_path_factory) -> Path:
    """A tiny generated COCO-keypoints set (16 train, 8 val images) for the fast tests."""
    from micronet_backbones.pose.synthetic import make_coco_keypoints

    root = tmp_path_factory.mktemp("small_coco")
    make_coco_keypoints(root, num_train=16, num_val=8, seed=123)
    return root


def point_config_at(cfg, data_root: Path):
    """Point every dataset and evaluator of an MMPose config at a generated set."""
    root = str(data_root).rstrip("/") + "/"
    for key, split in (("train_dataloader", "train"), ("val_dataloader", "val"),
                       ("test_dataloader", "val")):
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
