"""The ImageNet folder layout: ``<root>/train/<class>/*.JPEG`` and ``<root>/val/<class>/*.JPEG``."""

from __future__ import annotations

import os
from pathlib import Path

from torch.utils.data import DataLoader, DistributedSampler
from torchvision.datasets import ImageFolder

from .distributed import DistributedContext, ShardSampler

__all__ = ["image_folder", "check_same_classes", "train_loader", "val_loader"]


def image_folder(root: str | os.PathLike, split: str, transform) -> ImageFolder:
    """``ImageFolder`` of ``<root>/<split>``; classes are its sub-folders in sorted order
    (for ImageNet: the WordNet ids, which gives the usual 0..999 class indices)."""
    folder = Path(root) / split
    if not folder.is_dir():
        raise FileNotFoundError(
            f"no {split}/ folder in {root}: expected {root}/{split}/<class>/<image> "
            "(the ImageNet layout with one sub-folder per class)"
        )
    try:
        return ImageFolder(os.fspath(folder), transform=transform)
    except FileNotFoundError as error:  # torchvision: no class folder / no image in a class
        raise FileNotFoundError(f"{folder} is not a usable image folder: {error}") from None


def check_same_classes(train: ImageFolder, val: ImageFolder) -> None:
    """Both splits must hold the same class folders, or the label indices would disagree."""
    if train.classes != val.classes:
        only_train = sorted(set(train.classes) - set(val.classes))
        only_val = sorted(set(val.classes) - set(train.classes))
        raise ValueError(
            "train/ and val/ hold different classes "
            f"(only in train: {only_train[:10]}, only in val: {only_val[:10]})"
        )


def train_loader(
    dataset: ImageFolder,
    batch_size: int,
    context: DistributedContext,
    *,
    workers: int,
    seed: int,
) -> DataLoader:
    """Shuffled batches of ``batch_size`` images per process (call ``loader.sampler.set_epoch``).

    Each process sees its own 1 / world_size of the images (``DistributedSampler``) and only full
    batches (the classifier ends in BatchNorm1d, which needs more than one sample).
    """
    sampler = DistributedSampler(
        dataset, num_replicas=context.world_size, rank=context.rank, shuffle=True, seed=seed
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=context.device.type == "cuda",
        drop_last=True,
    )


def val_loader(
    dataset: ImageFolder, batch_size: int, context: DistributedContext, *, workers: int
) -> DataLoader:
    """Every image exactly once over all processes (:class:`ShardSampler`), in order."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=ShardSampler(len(dataset), context.rank, context.world_size),
        num_workers=workers,
        pin_memory=context.device.type == "cuda",
    )
