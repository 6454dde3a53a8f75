"""The authors' ImageNet training recipe, per architecture.

Every number below is read from the authors' public repository (``liyunsheng13/micronet``):

- ``main.py``: SGD with momentum (``--momentum`` 0.9); the learning rate is set every iteration
  (``adjust_learning_rate``): with ``--warmup`` it rises linearly from 0 over **5 epochs**
  (``warmup_epoch = 5 if args.warmup else 0``), then follows a cosine from the peak to 0 over the
  remaining iterations (``--lr-decay cos``); mixup's alpha ramps linearly from 0 over the first
  100 epochs (``mixup_alpha = args.mixup * epoch / 100`` for ``epoch < 100``).
- ``script/train_micronet_m*_4gpu.sh`` / ``scripts/train_micronet_m0_4gpu.sh``: 600 epochs,
  batch 512 with lr 0.2 (the 2-GPU scripts use batch 256 with lr 0.1: the same linear scaling),
  ``--label-smoothing 0.0`` and no ``--mixup`` (0), input 224.
  Weight decay: ``--wd 3e-5`` for M0, M1 **and M2**, ``--wd 4e-5`` for M3. Only the M3 script
  passes ``--warmup``; M0-M2 train without warm-up.
- ``utils/dataloaders.py``: ``RandomResizedCrop(input_size)`` + ``RandomHorizontalFlip`` for
  training; ``Resize(int(input_size / 0.875))`` (256 for 224) + ``CenterCrop(input_size)`` for
  validation; ImageNet mean/std normalisation.
- Dropout per arch (M0/M1 0.05, M2/M3 0.1, ``MODEL.MICRONETS.DROPOUT`` in the same scripts) is a
  property of the model and lives in the core (:mod:`micronet_backbones.specs`), not here.

Note: issue 7 summarises the recipe as "weight decay 3e-5 for M0/M1 and 4e-5 for M2/M3" and
"cosine decay with warm-up". The authors' scripts say otherwise for M2 (3e-5) and for warm-up
(M3 only); the defaults below follow the scripts. Both can be overridden on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Recipe", "RECIPES", "recipe_for", "scaled_lr"]


@dataclass(frozen=True)
class Recipe:
    """Training hyper-parameters of one MicroNet on ImageNet.

    Attributes:
        epochs: training length.
        batch_size: the global batch (summed over every process).
        lr: peak learning rate for ``reference_batch_size``; scaled linearly with the batch.
        reference_batch_size: the batch ``lr`` was tuned for.
        momentum: SGD momentum.
        weight_decay: SGD weight decay (applied to every parameter, as the authors do).
        warmup_epochs: linear warm-up from 0 to the peak lr, then cosine decay to 0.
        label_smoothing: 0 disables it.
        mixup: mixup alpha (0 disables it); ramped linearly over ``mixup_ramp_epochs``.
        mixup_ramp_epochs: epochs over which mixup's alpha grows from 0.
        input_size: training crop and validation centre crop.
        val_resize: shorter side before the validation centre crop.
    """

    weight_decay: float
    warmup_epochs: int
    epochs: int = 600
    batch_size: int = 512
    lr: float = 0.2
    reference_batch_size: int = 512
    momentum: float = 0.9
    label_smoothing: float = 0.0
    mixup: float = 0.0
    mixup_ramp_epochs: int = 100
    input_size: int = 224
    val_resize: int = 256


RECIPES: dict[str, Recipe] = {
    # script/train_micronet_m0_2gpu.sh, scripts/train_micronet_m0_4gpu.sh: --wd 3e-5, no --warmup
    "micronet_m0": Recipe(weight_decay=3e-5, warmup_epochs=0),
    # script/train_micronet_m1_4gpu.sh: --wd 3e-5, no --warmup
    "micronet_m1": Recipe(weight_decay=3e-5, warmup_epochs=0),
    # script/train_micronet_m2_4gpu.sh, scripts/train_micronet_m2_2gpu.sh: --wd 3e-5, no --warmup
    "micronet_m2": Recipe(weight_decay=3e-5, warmup_epochs=0),
    # script/train_micronet_m3_4gpu.sh: --wd 4e-5 --warmup (5 epochs in main.py)
    "micronet_m3": Recipe(weight_decay=4e-5, warmup_epochs=5),
}


def recipe_for(arch: str) -> Recipe:
    """The authors' recipe for ``arch`` (e.g. ``"micronet_m0"``); clear error if unknown."""
    if arch not in RECIPES:
        raise KeyError(f"no ImageNet recipe for {arch!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[arch]


def scaled_lr(recipe: Recipe, batch_size: int) -> float:
    """Peak lr for a global ``batch_size``: ``recipe.lr * batch_size / reference_batch_size``."""
    if batch_size <= 0:
        raise ValueError(f"batch size must be positive, got {batch_size}")
    return recipe.lr * batch_size / recipe.reference_batch_size
