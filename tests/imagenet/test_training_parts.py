"""Schedule, losses, mixup, accuracy counting, sharding, transforms and checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from micronet_backbones import CheckpointError, create_model
from micronet_backbones.imagenet import (
    CHECKPOINT_FORMAT,
    ShardSampler,
    SmoothedCrossEntropy,
    WarmupCosine,
    load_training_checkpoint,
    mixup_batch,
    save_checkpoint,
    topk_correct,
    train_transform,
    val_transform,
)

# ---- learning rate -------------------------------------------------------------------------


def test_warmup_then_cosine_to_zero():
    schedule = WarmupCosine(peak_lr=0.2, total_iters=1000, warmup_iters=100)
    assert schedule.lr(0) == 0.0  # the authors' warm-up starts at 0
    assert schedule.lr(50) == pytest.approx(0.1)
    assert schedule.lr(100) == pytest.approx(0.2)
    assert schedule.lr(550) == pytest.approx(0.1)  # half-way through the cosine
    assert schedule.lr(999) == pytest.approx(0.2 * (1 + math.cos(math.pi * 899 / 900)) / 2)
    assert schedule.lr(999) < 1e-5
    after_warmup = [schedule.lr(i) for i in range(100, 1000)]
    assert all(a >= b for a, b in zip(after_warmup, after_warmup[1:]))


def test_no_warmup_starts_at_the_peak():
    schedule = WarmupCosine(peak_lr=0.4, total_iters=10)
    assert schedule.lr(0) == 0.4
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert schedule.apply(optimizer, 5) == pytest.approx(0.2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"peak_lr": 0.1, "total_iters": 0}, "at least one iteration"),
        ({"peak_lr": 0.1, "total_iters": 10, "warmup_iters": 10}, "must be shorter"),
        ({"peak_lr": -1.0, "total_iters": 10}, "must be >= 0"),
    ],
)
def test_bad_schedules_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        WarmupCosine(**kwargs)


# ---- losses and mixup ----------------------------------------------------------------------


def test_no_smoothing_is_cross_entropy():
    logits, target = torch.randn(6, 5), torch.randint(0, 5, (6,))
    assert torch.allclose(
        SmoothedCrossEntropy(0.0)(logits, target), F.cross_entropy(logits, target)
    )


def test_smoothing_spreads_over_the_other_classes():
    logits, target = torch.randn(6, 5), torch.randint(0, 5, (6,))
    eps = 0.1
    soft = torch.full((6, 5), eps / 4)
    soft[torch.arange(6), target] = 1 - eps
    expected = -(soft * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert torch.allclose(SmoothedCrossEntropy(eps)(logits, target), expected)
    with pytest.raises(ValueError, match="label smoothing"):
        SmoothedCrossEntropy(1.0)


def test_mixup_blends_each_image_with_the_one_its_second_target_names():
    torch.manual_seed(0)
    target = torch.arange(8)
    images = target.float().view(8, 1, 1, 1).expand(8, 3, 4, 4).clone()  # image i is filled with i
    mixed, target_a, target_b, lam = mixup_batch(images, target, alpha=0.4)
    assert 0.0 < lam < 1.0  # a real blend (lam = 1 would make the checks below trivial)
    assert torch.equal(target_a, target)
    expected = lam * target.float() + (1 - lam) * target_b.float()
    assert torch.allclose(mixed[:, 0, 0, 0], expected)
    assert sorted(target_b.tolist()) == list(range(8))  # a permutation of the batch


def test_mixup_alpha_zero_changes_nothing():
    images, target = torch.randn(4, 3, 8, 8), torch.arange(4)
    mixed, target_a, target_b, lam = mixup_batch(images, target, alpha=0.0)
    assert lam == 1.0 and mixed is images and torch.equal(target_b, target)


# ---- accuracy and sharding -----------------------------------------------------------------


def test_topk_counts():
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.1, 0.2, 0.7], [0.5, 0.4, 0.1]])
    target = torch.tensor([0, 1, 2])
    top1, top2 = topk_correct(logits, target, topk=(1, 2))
    assert (top1.item(), top2.item()) == (1.0, 2.0)
    top1, top5 = topk_correct(logits, target)  # top-5 of 3 classes: every sample
    assert (top1.item(), top5.item()) == (1.0, 3.0)


@pytest.mark.parametrize("length, world_size", [(10, 3), (2, 4), (0, 2), (7, 1)])
def test_shards_cover_every_item_once(length, world_size):
    shards = [list(ShardSampler(length, rank, world_size)) for rank in range(world_size)]
    assert sorted(i for shard in shards for i in shard) == list(range(length))
    assert [len(ShardSampler(length, r, world_size)) for r in range(world_size)] == [
        len(s) for s in shards
    ]
    with pytest.raises(ValueError, match="outside"):
        ShardSampler(length, world_size, world_size)


# ---- transforms ----------------------------------------------------------------------------


def test_transforms_give_the_asked_size():
    image = Image.new("RGB", (80, 60), (200, 40, 40))
    assert train_transform(48)(image).shape == (3, 48, 48)
    assert val_transform(48, 56)(image).shape == (3, 48, 48)
    assert val_transform()(Image.new("RGB", (500, 375))).shape == (3, 224, 224)
    red = val_transform(48, 56)(image)[:, 24, 24]  # normalised with the ImageNet mean / std
    expected = (
        torch.tensor([200, 40, 40]) / 255 - torch.tensor([0.485, 0.456, 0.406])
    ) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(red, expected, atol=1e-5)
    with pytest.raises(ValueError, match="resize"):
        val_transform(224, 200)


# ---- checkpoints ---------------------------------------------------------------------------


def _checkpoint(model, optimizer):
    return {
        "arch": "micronet_m0",
        "state_dict": model.state_dict(),
        "classes": ["a", "b", "c"],
        "epoch": 1,
        "optimizer": optimizer.state_dict(),
        "scaler": torch.amp.GradScaler("cuda", enabled=False).state_dict(),
        "scheduler": WarmupCosine(0.1, 10).state_dict(),
        "best_top1": 33.3,
        "metrics": {"val_top1": 33.3},
        "args": {"data": "/somewhere", "epochs": 2},
    }


def test_checkpoint_is_weights_only_and_loads_into_create_model(tmp_path):
    model = create_model("micronet_m0", num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(2, 3, 64, 64)).sum().backward()
    optimizer.step()  # momentum buffers in the optimizer state
    path = tmp_path / "last.pth"
    save_checkpoint(path, _checkpoint(model, optimizer))
    assert not (tmp_path / "last.pth.partial").exists()

    raw = torch.load(path, weights_only=True)
    assert raw["format"] == CHECKPOINT_FORMAT and raw["epoch"] == 1
    assert load_training_checkpoint(path)["classes"] == ["a", "b", "c"]

    loaded = create_model("micronet_m0", num_classes=3, pretrained=path).eval()
    model.eval()
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(loaded(x), model(x))
    with pytest.raises(CheckpointError, match="micronet_m0"):
        create_model("micronet_m1", num_classes=3, pretrained=path)


def test_incomplete_checkpoints_are_refused(tmp_path):
    model = create_model("micronet_m0", num_classes=3)
    state = _checkpoint(model, torch.optim.SGD(model.parameters(), lr=0.1))
    del state["optimizer"]
    with pytest.raises(ValueError, match="optimizer"):
        save_checkpoint(tmp_path / "x.pth", state)
    with pytest.raises(FileNotFoundError, match="no checkpoint file"):
        load_training_checkpoint(tmp_path / "missing.pth")


def test_resuming_from_the_authors_checkpoint_is_refused_clearly(authors_checkpoint):
    with pytest.raises(CheckpointError, match="use --weights"):
        load_training_checkpoint(authors_checkpoint("m0"))
