"""Fixtures of the ImageNet tooling tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from imagenet_folder import COLOURS, make_image_folder


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    """4 colour classes, 96 training and 8 validation images each, 56 x 56 pixels."""
    return make_image_folder(tmp_path_factory.mktemp("colours"), COLOURS, 96, 8, size=56)


@pytest.fixture(scope="session")
def tool():
    """The command line behind tools/train_imagenet.py (``main``, ``build_parser``, ...)."""
    from micronet_backbones.imagenet import cli

    return cli
