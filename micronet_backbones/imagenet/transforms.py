"""ImageNet pre-processing, as in the authors' ``utils/dataloaders.py``."""

from __future__ import annotations

from torchvision import transforms

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "train_transform", "val_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def train_transform(input_size: int = 224) -> transforms.Compose:
    """PIL image -> float tensor (3, input_size, input_size): random-resized crop, flip, normalise."""
    if input_size <= 0:
        raise ValueError(f"input size must be positive, got {input_size}")
    return transforms.Compose(
        [
            transforms.RandomResizedCrop(input_size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )


def val_transform(input_size: int = 224, resize: int = 256) -> transforms.Compose:
    """PIL image -> float tensor (3, input_size, input_size): resize the shorter side to
    ``resize``, centre-crop ``input_size``, normalise (224 / 256 on ImageNet)."""
    if input_size <= 0 or resize < input_size:
        raise ValueError(
            f"validation needs 0 < input size <= resize, got input size {input_size}, resize {resize}"
        )
    return transforms.Compose(
        [
            transforms.Resize(resize),
            transforms.CenterCrop(input_size),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
