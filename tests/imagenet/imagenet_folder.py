"""Helpers of the ImageNet tooling tests: a tiny ImageNet-layout folder of generated images
(no download), and the check that a checkpoint loads into both adapters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / "tools" / "train_imagenet.py"

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
    """Write ``root/{train,val}/<class>/<i>.png`` (size x size): one flat colour per image, the
    class colour shifted by up to +-30 per channel. Flat images look the same after a
    random-resized crop, so BatchNorm statistics carry over from training to validation."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name, colour in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                shade = np.clip(np.array(colour) + rng.integers(-30, 31, size=3), 0, 255)
                pixels = np.broadcast_to(shade.astype(np.uint8), (size, size, 3))
                Image.fromarray(np.ascontiguousarray(pixels)).save(folder / f"{index:04d}.png")
    return root
