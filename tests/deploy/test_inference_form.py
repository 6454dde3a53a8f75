"""The inference form equals the original model in eval mode (1e-5 relative, float32)."""

from __future__ import annotations

import pytest
import torch
from deploy_helpers import TOLERANCE, random_model, randomize, relative_error
from micronet_testing import compact_fixture

import micronet_backbones as mb
from micronet_backbones.deploy import InferenceMicroNet, to_inference_form

ARCHS = ("micronet_m0", "micronet_m1", "micronet_m2", "micronet_m3")


def _compare(model, x):
    fused = to_inference_form(model)
    with torch.no_grad():
        expected = model.eval()(x)
        actual = fused(x)
    return expected, actual


@pytest.mark.parametrize("name", ARCHS)
def test_classifier_is_exact(name):
    model = random_model(name)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    expected, actual = _compare(model, x)
    assert actual.shape == (2, 1000)
    assert relative_error(actual, expected) < TOLERANCE


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("output_stride", [32, 16])
def test_features_are_exact(name, output_stride):
    model = random_model(name, features_only=True, output_stride=output_stride)
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    expected, actual = _compare(model, x)
    assert len(actual) == len(expected) == len(model.feature_info)
    for a, e in zip(actual, expected):
        assert relative_error(a, e) < TOLERANCE


@pytest.mark.parametrize("name", ARCHS)
def test_exact_beyond_rounding_in_float64(name):
    """In float64 the inference form agrees to 1e-12: it is the same function, not an
    approximation that happens to fit float32's tolerance."""
    model = random_model(name, features_only=True).double()
    x = torch.randn(1, 3, 96, 160, dtype=torch.float64)
    expected, actual = _compare(model, x)
    for a, e in zip(actual, expected):
        assert a.dtype == torch.float64
        assert relative_error(a, e) < 1e-12


@pytest.mark.parametrize("size", [(97, 131), (64, 64), (161, 33)])
def test_odd_sizes_keep_borders_exact(size):
    """Odd widths and heights change which border columns the merged depthwise kernels must
    correct (left only / left and right); batch 3 runs the batched matmul path."""
    model = random_model("micronet_m1", features_only=True)
    x = torch.randn(3, 3, *size, generator=torch.Generator().manual_seed(3))
    expected, actual = _compare(model, x)
    for a, e in zip(actual, expected):
        assert relative_error(a, e) < TOLERANCE


def test_batch_one_equals_batched():
    fused = to_inference_form(random_model("micronet_m2"))
    x = torch.randn(3, 3, 96, 128)
    with torch.no_grad():
        together = fused(x)
        one_by_one = torch.cat([fused(x[i : i + 1]) for i in range(3)])
    assert relative_error(one_by_one, together) < TOLERANCE


def test_taps_subset_drops_unused_blocks():
    model = random_model("micronet_m3", features_only=True, out_strides=(8,))
    fused = to_inference_form(model)
    last_tap = model.feature_info[-1].stage
    assert len(fused.blocks) == sum(len(stage) for stage in model.stages[: last_tap + 1])
    expected, actual = _compare(model, torch.randn(1, 3, 128, 128))
    assert len(actual) == 1 and relative_error(actual[0], expected[0]) < TOLERANCE


def test_fixture_weights(authors_checkpoint):
    """With the authors' fixture weights the inference form gives the authors' logits."""
    for arch in ("m0", "m3"):
        fixture = compact_fixture(arch)
        model = mb.create_model(f"micronet_{arch}", pretrained=str(authors_checkpoint(arch)))
        with torch.no_grad():
            logits = to_inference_form(model)(fixture["input"])
        assert relative_error(logits, fixture["logits"]) < TOLERANCE


def test_original_untouched_and_form_not_trainable():
    model = random_model("micronet_m0").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fused = to_inference_form(model)
    assert model.training, "to_inference_form must not switch the original to eval"
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert isinstance(fused, InferenceMicroNet) and not fused.training
    assert list(fused.parameters()) == []
    assert fused.feature_info == model.feature_info


def test_features_are_not_overwritten_by_later_blocks():
    """Fused blocks work in place on their own intermediates; returned taps must stay intact."""
    model = random_model("micronet_m2", features_only=True)
    fused = to_inference_form(model)
    x = torch.randn(1, 3, 160, 160)
    with torch.no_grad():
        features = fused(x)
        copies = [f.clone() for f in features]
        fused(x)
    for f, c in zip(features, copies):
        assert torch.equal(f, c)
    # and the input is not modified either
    x0 = x.clone()
    with torch.no_grad():
        fused(x)
    assert torch.equal(x, x0)


def test_bad_inputs_raise():
    with pytest.raises(TypeError, match="MicroNet"):
        to_inference_form(torch.nn.Conv2d(3, 3, 1))
    fused = to_inference_form(random_model("micronet_m0"))
    with pytest.raises(ValueError, match="expects input of shape"):
        fused(torch.randn(1, 4, 224, 224))
    with pytest.raises(ValueError, match="expects input of shape"):
        fused(torch.randn(3, 224, 224))


def test_randomize_changes_outputs():
    """Guard for the helper itself: the random statistics must change what the model does."""
    torch.manual_seed(0)
    plain = mb.create_model("micronet_m0").eval()
    torch.manual_seed(0)
    randomized = randomize(mb.create_model("micronet_m0"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert relative_error(randomized(x), plain(x)) > 0.1
