"""Parity with the authors' MicroNet: fixtures (their outputs) and, beyond them, a reference.

The compact fixtures (tests/fixtures, weights and input from a formula) are checked on every
clone; the large ones (../shared/fixtures, 224 x 224) are an optional extra and skip when absent.
Weights always enter through the authors' checkpoint format: their state_dict, saved as a file,
read by ``create_model(..., pretrained=path)``.

Tolerance: 1e-5 relative (max abs difference over max abs value), float32, eval mode.
"""

from __future__ import annotations

import pytest
import torch
from micronet_testing import ARCHS, STRIDES, compact_fixture, large_fixture, relative_error
from reference_micronet import reference_forward

import micronet_backbones as mb

TOLERANCE = 1e-5
FIXTURES = {"compact": compact_fixture, "large": large_fixture}


@pytest.fixture(scope="module")
def large_checkpoints(tmp_path_factory):
    """Each large fixture's state_dict saved on its own, as a bare authors' checkpoint file."""
    folder = tmp_path_factory.mktemp("large_authors_checkpoints")
    paths = {}

    def get(arch):
        if arch not in paths:
            paths[arch] = folder / f"micronet-{arch}.pth"
            torch.save(large_fixture(arch)["state_dict"], paths[arch])
        return paths[arch]

    return get


@pytest.fixture
def checkpoint_of(authors_checkpoint, large_checkpoints):
    """``get(source, arch) -> Path`` of the authors'-format checkpoint of that fixture."""
    getters = {"compact": authors_checkpoint, "large": large_checkpoints}
    return lambda source, arch: getters[source](arch)


@pytest.mark.parametrize("source", FIXTURES)
@pytest.mark.parametrize("arch", ARCHS)
def test_reference_reproduces_the_fixture(arch, source):
    """The test-only reference is itself checked against the authors' outputs first."""
    fixture = FIXTURES[source](arch)
    with torch.no_grad():
        logits, features = reference_forward(fixture["state_dict"], arch, fixture["input"])
    assert relative_error(logits, fixture["logits"]) < TOLERANCE
    for stride in STRIDES:
        assert relative_error(features[stride], fixture["features"][stride]) < TOLERANCE


@pytest.mark.parametrize("source", FIXTURES)
@pytest.mark.parametrize("arch", ARCHS)
def test_model_matches_the_fixture(arch, source, checkpoint_of):
    fixture = FIXTURES[source](arch)
    path = checkpoint_of(source, arch)
    classifier = mb.create_model(f"micronet_{arch}", pretrained=str(path)).eval()
    backbone = mb.create_model(f"micronet_{arch}", pretrained=path, features_only=True).eval()
    with torch.no_grad():
        logits = classifier(fixture["input"])
        features = backbone(fixture["input"])
    errors = {"logits": relative_error(logits, fixture["logits"])}
    assert [info.stride for info in backbone.feature_info] == list(STRIDES)
    for info, feature in zip(backbone.feature_info, features):
        errors[info.stride] = relative_error(feature, fixture["features"][info.stride])
    print(f"{arch} ({source}): relative errors {errors}")
    assert max(errors.values()) < TOLERANCE, errors


def test_the_compact_fixtures_catch_a_small_change_of_one_late_layer(authors_checkpoint):
    """The formula's weights are sensitive: 5% on one late layer moves the logits past 1e-5."""
    fixture = compact_fixture("m0")
    edited = dict(fixture["state_dict"])
    edited["classifier.2.linear.0.weight"] = edited["classifier.2.linear.0.weight"] * 1.05
    model = mb.create_model("micronet_m0", pretrained=edited).eval()
    with torch.no_grad():
        assert relative_error(model(fixture["input"]), fixture["logits"]) > 10 * TOLERANCE


# Inputs the fixtures do not cover: batch sizes 1 and 3, non-square sizes, sizes that are not
# multiples of 32 (every strided conv then floors as in the authors' code), the 32 x 32 minimum.
SHAPES = [(1, 64, 96), (3, 33, 47), (1, 32, 32), (2, 97, 50)]


@pytest.mark.parametrize("arch", ARCHS)
def test_model_matches_the_reference_on_other_inputs(arch, authors_checkpoint):
    state_dict = compact_fixture(arch)["state_dict"]
    classifier = mb.create_model(f"micronet_{arch}", pretrained=authors_checkpoint(arch)).eval()
    backbone = mb.create_model(
        f"micronet_{arch}", pretrained=authors_checkpoint(arch), features_only=True
    ).eval()
    generator = torch.Generator().manual_seed(1)
    for batch, height, width in SHAPES:
        x = torch.randn(batch, 3, height, width, generator=generator)
        with torch.no_grad():
            expected_logits, expected_features = reference_forward(state_dict, arch, x)
            logits = classifier(x)
            features = backbone(x)
        assert relative_error(logits, expected_logits) < TOLERANCE, (batch, height, width)
        for info, feature in zip(backbone.feature_info, features):
            expected = expected_features[info.stride]
            assert relative_error(feature, expected) < TOLERANCE, (batch, height, width, info)


@pytest.mark.parametrize("arch", ["m0", "m3"])
def test_output_stride_16_matches_the_reference_with_edited_strides(arch, authors_checkpoint):
    state_dict = compact_fixture(arch)["state_dict"]
    backbone = mb.create_model(
        f"micronet_{arch}",
        pretrained=authors_checkpoint(arch),
        features_only=True,
        output_stride=16,
    ).eval()
    assert [info.stride for info in backbone.feature_info] == [4, 8, 16]
    x = torch.randn(2, 3, 64, 80, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        _, expected = reference_forward(state_dict, arch, x, output_stride=16)
        features = backbone(x)
    assert features[-1].shape[-2:] == (4, 5)
    for info, feature in zip(backbone.feature_info, features):
        assert relative_error(feature, expected[info.stride]) < TOLERANCE
