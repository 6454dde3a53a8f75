"""ImageNet training and evaluation of MicroNet (used by ``tools/train_imagenet.py``).

- :mod:`.recipe`: the authors' hyper-parameters per arch, with their sources.
- :mod:`.transforms`: random-resized crop + flip for training, resize + centre crop for val.
- :mod:`.data`: the ``train/`` / ``val/`` ImageFolder layout and the per-process loaders.
- :mod:`.schedule`: warm-up + cosine learning rate, per iteration.
- :mod:`.losses`: label smoothing and mixup.
- :mod:`.distributed`: ``torchrun`` process groups (NCCL on GPUs, gloo on CPUs).
- :mod:`.engine`: one training epoch, one exact evaluation pass.
- :mod:`.checkpoints`: resumable checkpoints that ``create_model(..., pretrained=path)`` reads.
"""

from .checkpoints import CHECKPOINT_FORMAT, load_training_checkpoint, save_checkpoint
from .distributed import DistributedContext, ShardSampler, setup_distributed, shutdown_distributed
from .engine import evaluate, topk_correct, train_one_epoch
from .losses import SmoothedCrossEntropy, mixup_batch
from .recipe import RECIPES, Recipe, recipe_for, scaled_lr
from .schedule import WarmupCosine
from .transforms import train_transform, val_transform

__all__ = [
    "CHECKPOINT_FORMAT",
    "DistributedContext",
    "RECIPES",
    "Recipe",
    "ShardSampler",
    "SmoothedCrossEntropy",
    "WarmupCosine",
    "evaluate",
    "load_training_checkpoint",
    "mixup_batch",
    "recipe_for",
    "save_checkpoint",
    "scaled_lr",
    "setup_distributed",
    "shutdown_distributed",
    "topk_correct",
    "train_one_epoch",
    "train_transform",
    "val_transform",
]
