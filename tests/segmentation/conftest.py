"""Shared fixtures of the segmentation tests: MMSegmentation registered with our modules."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _mmseg_modules():
    """MMSegmentation's modules and ours registered (once per session)."""
    from mmseg.utils import register_all_modules

    import micronet_backbones.segmentation  # noqa: F401  (registers MicroNet and MRASPPHead)

    register_all_modules(init_default_scope=False)


@pytest.fixture(autouse=True)
def mmseg_scope(_mmseg_modules):
    """MMSegmentation as the default scope for each test, whatever other folders' tests set."""
    from mmengine.registry import DefaultScope

    with DefaultScope.overwrite_default_scope("mmseg"):
        yield


@pytest.fixture(scope="session")
def small_scenes(tmp_path_factory) -> Path:
    """A tiny generated segmentation set (16 train, 8 val images of 64x64)."""
    from micronet_backbones.synthetic.segmentation_scenes import make_segmentation_scenes

    root = tmp_path_factory.mktemp("small_scenes")
    make_segmentation_scenes(root, num_train=16, num_val=8, seed=123, image_size=(64, 64))
    return root
