"""ImageNet training and evaluation of MicroNet (used by ``tools/train_imagenet.py``).

- :mod:`.recipe`: the authors' hyper-parameters per arch, with their sources.
- :mod:`.transforms`: random-resized crop + flip for training, resize + centre crop for val.
- :mod:`.data`: the ``train/`` / ``val/`` ImageFolder layout and the per-process loaders.
- :mod:`.schedule`: warm-up + cosine learning rate, per iteration.
- :mod:`.losses`: label smoothing and mixup.
- :mod:`.distributed`: ``torchrun`` process groups (NCCL on GPUs, gloo on CPUs).
- :mod:`.mutual`: the KL terms of mutual learning (Deep Mutual Learning).
- :mod:`.engine`: one training step / epoch of one or several networks, one exact evaluation pass.
- :mod:`.checkpoints`: resumable checkpoints that ``create_model(..., pretrained=path)`` reads.
- :mod:`.training`: a training run (data, networks, resume, epochs, checkpoints, log).
- :mod:`.cli`: the command line of ``tools/train_imagenet.py``.
"""

from .checkpoints import CHECKPOINT_FORMAT, load_training_checkpoint, save_checkpoint
from .distributed import DistributedContext, ShardSampler, setup_distributed, shutdown_distributed
from .engine import Member, evaluate, topk_correct, train_one_epoch, train_step
from .losses import SmoothedCrossEntropy, mixup_batch
from .mutual import MutualLearning, mutual_kl
from .recipe import RECIPES, Recipe, recipe_for, scaled_lr
from .schedule import WarmupCosine
from .transforms import train_transform, val_transform

__all__ = [
    "CHECKPOINT_FORMAT",
    "DistributedContext",
    "Member",
    "MutualLearning",
    "RECIPES",
    "Recipe",
    "ShardSampler",
    "SmoothedCrossEntropy",
    "WarmupCosine",
    "evaluate",
    "load_training_checkpoint",
    "mixup_batch",
    "mutual_kl",
    "recipe_for",
    "save_checkpoint",
    "scaled_lr",
    "setup_distributed",
    "shutdown_distributed",
    "topk_correct",
    "train_one_epoch",
    "train_step",
    "train_transform",
    "val_transform",
]
