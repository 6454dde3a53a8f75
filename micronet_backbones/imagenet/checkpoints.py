"""Training checkpoints: the model in the core's format plus everything needed to resume.

A checkpoint is a plain dict (every value a tensor, a plain container, a number or a string, so
``torch.load(path, weights_only=True)`` reads it)::

    {
        "format": "micronet_backbones.imagenet",   # marks our training checkpoints
        "arch": "micronet_m0",                     # registry name
        "state_dict": {name: tensor},              # bare model weights, our key names
        "classes": ["n01440764", ...],             # class folder names, index order
        "epoch": 3,                                # epochs finished
        "optimizer": {...}, "scaler": {...}, "scheduler": {...},
        "best_top1": 51.2, "metrics": {...},       # validation of the last epoch
        "args": {...},                             # the command-line options of the run
        "partner": {"state_dict": ..., "optimizer": ...},  # --mutual-learning runs only
    }

``micronet_backbones.create_model(arch, num_classes=len(classes), pretrained=path)`` loads it
(the core reads the weights under ``"state_dict"``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, load_file

__all__ = [
    "CHECKPOINT_FORMAT",
    "plain",
    "save_checkpoint",
    "load_training_checkpoint",
    "checkpoint_classes",
]

CHECKPOINT_FORMAT = "micronet_backbones.imagenet"

_REQUIRED = (
    "arch",
    "state_dict",
    "classes",
    "epoch",
    "optimizer",
    "scaler",
    "scheduler",
    "best_top1",
)


def plain(value):
    """``value`` made of plain types only (paths become strings); ``TypeError`` otherwise."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    raise TypeError(
        f"cannot store a {type(value).__name__} in a weights_only checkpoint: {value!r}"
    )


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping) -> None:
    """Write ``checkpoint`` (a dict as in the module docstring) atomically to ``path``.

    The file is written beside ``path`` first and renamed, so an interrupted save never leaves a
    truncated checkpoint behind.
    """
    missing = [key for key in _REQUIRED if key not in checkpoint]
    if missing:
        raise ValueError(f"training checkpoint lacks {', '.join(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save({"format": CHECKPOINT_FORMAT, **checkpoint}, partial)
    os.replace(partial, path)


def _read(path: str | os.PathLike) -> dict:
    checkpoint = load_file(path)  # the core's reader: weights_only, clear errors
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint dict")
    return dict(checkpoint)


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """Read one of our training checkpoints (for ``--resume``); clear error for anything else."""
    checkpoint = _read(path)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path} is not a training checkpoint of tools/train_imagenet.py (no "
            f"format={CHECKPOINT_FORMAT!r}); to start from weights only, use --weights"
        )
    missing = [key for key in _REQUIRED if key not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} lacks {', '.join(missing)}; it cannot be resumed from")
    return checkpoint


def checkpoint_classes(path: str | os.PathLike) -> list[str] | None:
    """The class names stored in one of our checkpoints, or None for any other checkpoint
    (e.g. the authors', which store no class names)."""
    checkpoint = _read(path)
    if checkpoint.get("format") != CHECKPOINT_FORMAT:
        return None
    return list(checkpoint.get("classes", [])) or None
