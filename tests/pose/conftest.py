"""Shared fixtures of the pose tests: MMPose registered with our modules, generated data."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def mmpose_registry():
    """MMPose's modules and ours registered, MMPose as the default scope."""
    from mmpose.utils import register_all_modules

    import micronet_backbones.pose  # noqa: F401  (registers MicroNet and MicroBlockHead)

    register_all_modules(init_default_scope=True)


@pytest.fixture(scope="session")
def small_coco(tmp_path_factory) -> Path:
    """A tiny generated COCO-keypoints set (16 train, 8 val images) for the fast tests."""
    from micronet_backbones.synthetic.figures import make_coco_keypoints

    root = tmp_path_factory.mktemp("small_coco")
    make_coco_keypoints(root, num_train=16, num_val=8, seed=123)
    return root
