"""Mutual learning: the KL term, the gradient it sends into each network from the other's
prediction, and weight 0 = two independent runs (one process, fixed batches)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from micronet_backbones import MicroNet, full_rank_partner, get_spec
from micronet_backbones.imagenet import (
    Member,
    MutualLearning,
    SmoothedCrossEntropy,
    mutual_kl,
    train_step,
)

NUM_CLASSES = 4


def test_kl_is_the_temperature_scaled_divergence_towards_the_other():
    torch.manual_seed(0)
    z, other = torch.randn(6, NUM_CLASSES), torch.randn(6, NUM_CLASSES)
    for t in (1.0, 3.0):
        p, q = F.softmax(z / t, dim=1), F.softmax(other / t, dim=1)
        expected = t * t * (q * (q.log() - p.log())).sum(dim=1).mean()
        assert mutual_kl(z, other, t).item() == pytest.approx(expected.item(), rel=1e-5)
    assert mutual_kl(z, z.clone()).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="same shape"):
        mutual_kl(z, other[:, :3])
    with pytest.raises(ValueError, match="temperature"):
        MutualLearning(temperature=0.0)
    with pytest.raises(ValueError, match="weight"):
        MutualLearning(weight=-1.0)


def _pair(dropout: float | None = None, seed: int = 0) -> tuple[MicroNet, MicroNet]:
    """M0 and its full-rank partner for 4 classes."""
    torch.manual_seed(seed)
    micronet = MicroNet(get_spec("m0"), num_classes=NUM_CLASSES, dropout=dropout)
    return micronet, full_rank_partner("m0", num_classes=NUM_CLASSES, dropout=dropout)


def _batches(count: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    return [
        (torch.randn(8, 3, 32, 32, generator=generator), torch.arange(8) % NUM_CLASSES)
        for _ in range(count)
    ]


def _members(*models) -> list[Member]:
    return [
        Member(name, model, model, torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))
        for name, model in zip(("", "partner"), models)
    ]


def _train(members, batches, mutual=None) -> torch.Tensor:
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    criterion = SmoothedCrossEntropy(0.1)
    for member in members:
        member.model.train()
    return sum(
        train_step(members, x, y, criterion, scaler, amp=False, mutual=mutual) for x, y in batches
    )


def test_each_network_gets_gradient_from_the_others_prediction_only():
    micronet, partner = _pair()
    x = _batches(1)[0][0]
    logits = {"micronet": micronet(x), "partner": partner(x)}
    for learner, teacher in (("micronet", "partner"), ("partner", "micronet")):
        learner_net, teacher_net = (
            (micronet, partner) if learner == "micronet" else (partner, micronet)
        )
        kl = mutual_kl(logits[learner], logits[teacher])
        grads = torch.autograd.grad(
            kl, list(learner_net.parameters()), retain_graph=True, allow_unused=True
        )
        assert any(g is not None and g.abs().sum() > 0 for g in grads), (
            f"no KL gradient into the {learner}"
        )
        into_teacher = torch.autograd.grad(
            kl, list(teacher_net.parameters()), retain_graph=True, allow_unused=True
        )
        assert all(g is None for g in into_teacher), f"the KL of the {learner} pushes the {teacher}"


@pytest.mark.parametrize("learner", [0, 1])
def test_the_other_networks_prediction_drives_each_update(learner):
    """Swap the other network for a differently initialised one: with weight > 0 the learner's
    step changes, with weight 0 it is the same to the bit."""
    batches = _batches(1)
    same_start = _pair(seed=0)
    other_seed = _pair(seed=7)
    results = {}
    for weight in (1.0, 0.0):
        for label, other in (("same", same_start), ("swapped", other_seed)):
            models = [copy.deepcopy(same_start[learner]), copy.deepcopy(other[1 - learner])]
            if learner == 1:
                models.reverse()
            members = _members(*models)
            torch.manual_seed(3)  # the same dropout masks in every run
            numbers = _train(members, batches, MutualLearning(weight=weight, temperature=2.0))
            results[weight, label] = (members[learner].model.state_dict(), numbers[learner])
    for weight, differs in ((1.0, True), (0.0, False)):
        same, swapped = results[weight, "same"][0], results[weight, "swapped"][0]
        changed = [k for k in same if not torch.equal(same[k], swapped[k])]
        assert bool(changed) == differs, (weight, changed[:5])
    # The loss the learner was trained on is CE + weight * KL, and the KL term is not zero.
    loss, ce, kl = results[1.0, "same"][1][:3].tolist()
    assert kl > 0 and loss == pytest.approx(ce + kl, rel=1e-6)


def test_weight_zero_is_two_independent_runs():
    """Mutual learning with weight 0 trains each network exactly as it trains alone (dropout 0:
    the networks then draw no random numbers, so sharing one generator changes nothing)."""
    batches = _batches(3)
    micronet, partner = _pair(dropout=0.0)
    together = _members(copy.deepcopy(micronet), copy.deepcopy(partner))
    numbers = _train(together, batches, MutualLearning(weight=0.0))
    alone = [_members(copy.deepcopy(micronet))[0], _members(copy.deepcopy(partner))[0]]
    for index, member in enumerate(alone):
        own = _train([member], batches)
        assert torch.equal(numbers[index, [1, 3, 4, 5]], own[0, [1, 3, 4, 5]])  # CE, top-1/5, batch
        expected, got = member.model.state_dict(), together[index].model.state_dict()
        assert all(torch.equal(expected[k], got[k]) for k in expected), f"network {index} differs"
        momentum = [s["momentum_buffer"] for s in member.optimizer.state.values()]
        together_momentum = [s["momentum_buffer"] for s in together[index].optimizer.state.values()]
        assert all(torch.equal(a, b) for a, b in zip(momentum, together_momentum))
    assert numbers[:, 2].gt(0).all()  # the KL terms were computed (and weighted by 0)
