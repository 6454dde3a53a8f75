"""A tiny ImageNet-layout folder of generated images (no download)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Four classes that differ by colour only: easy to separate after a few dozen SGD steps, and
# unchanged by random-resized crops and flips.
COLOURS = {
    "class_a_red": (200, 40, 40),
    "class_b_green": (40, 180, 60),
    "class_c_blue": (40, 60, 200),
    "class_d_yellow": (210, 200, 40),
}


def make_image_folder(
    root: Path, classes: dict[str, tuple[int, int, int]], train_per_class: int, val_per_class: int,
    size: int = 40, seed: int = 0,
) -> Path:
    """Write ``root/{train,val}/<class>/<i>.png``: the class colour plus pixel noise (size x size)."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name, colour in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                noise = rng.integers(-40, 41, size=(size, size, 3))
                pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{index:04d}.png")
    return root


@pytest.fixture(scope="module")
def colour_folder(tmp_path_factory) -> Path:
    """4 colour classes, 24 training and 8 validation images each, 40 x 40 pixels."""
    return make_image_folder(tmp_path_factory.mktemp("colours"), COLOURS, 24, 8)
