"""The whole-network native runner (micronet::Runner): what an eager float32 CPU call of the
inference form runs when the kernels are built. Equal to the model on PyTorch ops (1e-5
relative) for M0-M3, classifier and stride-32/16 features; falls back to the layer path where
it does not apply, and survives copies, casts and state-dict loads."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from kernel_helpers import as_list, authors_model
from micronet_testing import ARCHS, relative_error

from micronet_backbones import kernels
from micronet_backbones.deploy import native_runner, to_inference_form

TOLERANCE = 1e-5

pytestmark = pytest.mark.skipif(
    not native_runner.runner_available(),
    reason=f"native runner not built: {kernels.status().reason}",
)

KINDS = {
    "classifier": {},
    "stride32": {"features_only": True},
    "stride16": {"features_only": True, "output_stride": 16},
}


def reference(model, x):
    with torch.no_grad(), kernels.pytorch_fallback():
        return as_list(model.eval()(x))


def assert_equal_outputs(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        assert relative_error(a, e) < TOLERANCE


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("kind", KINDS)
def test_runner_equals_the_model(arch, kind):
    model = authors_model(arch, **KINDS[kind])
    fast = to_inference_form(model)
    for shape in [(2, 3, 96, 128), (1, 3, 67, 45)]:  # even and odd sizes
        x = torch.randn(shape)
        assert fast.execution_path(x) == "runner"
        with torch.no_grad():
            actual = as_list(fast(x))
        assert_equal_outputs(actual, reference(model, x))


def test_runner_equals_the_layer_path():
    fast = to_inference_form(authors_model("m3", features_only=True))
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        with_runner = fast(x)
        with native_runner.layer_by_layer():
            assert fast.execution_path(x) == "layers (native kernels)"
            layers = fast(x)
    assert_equal_outputs(with_runner, layers)


def test_runner_splits_channels_over_threads():
    fast = to_inference_form(authors_model("m2"))
    x = torch.randn(1, 3, 96, 96)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with torch.no_grad():
            one = fast(x)
        torch.set_num_threads(2)
        with torch.no_grad():
            two = fast(x)
    finally:
        torch.set_num_threads(threads)
    assert relative_error(two, one) < TOLERANCE


def test_paths_outside_the_runner():
    fast = to_inference_form(authors_model("m0"))
    x = torch.randn(1, 3, 64, 64)
    assert fast.execution_path(x.double()) != "runner"  # float64: the layer path
    with kernels.pytorch_fallback():
        assert fast.execution_path(x) == "layers (pytorch)"


def test_copies_casts_and_state_dict_loads_rebuild_the_runner():
    model = authors_model("m1")
    fast = to_inference_form(model)
    x = torch.randn(1, 3, 64, 64)
    expected = reference(model, x)
    with torch.no_grad():
        fast(x)  # builds the runner
        for clone in (copy.deepcopy(fast), pickle.loads(pickle.dumps(fast))):
            assert clone.execution_path(x) == "runner"
            assert_equal_outputs(as_list(clone(x)), expected)
        fast.double()
        assert fast.execution_path(x.double()) != "runner"
        fast.float()
        assert_equal_outputs(as_list(fast(x)), expected)
        # Loading other weights: the runner follows the module's tensors.
        other = to_inference_form(authors_model("m1").apply(_perturb_batchnorm))
        fast.load_state_dict(other.state_dict())
        assert_equal_outputs(as_list(fast(x)), as_list(other(x)))


@pytest.mark.parametrize("buffer", ["fc2_bias", "fc1_weight_t"])
def test_in_place_changes_of_the_weights_rebuild_the_runner(buffer):
    # The runner reads a packed copy of the buffers (the head's matrices in another layout);
    # an in-place edit makes it stale.
    fast = to_inference_form(authors_model("m0"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = fast(x)
        runner = fast._runner
        assert runner.current()
        getattr(fast.head, buffer).add_(1.0)
        assert not runner.current()
        with pytest.raises(RuntimeError, match="changed in place"):
            runner.run(x)
        after = fast(x)
        assert fast._runner is not runner and fast._runner.current()
        with native_runner.layer_by_layer():
            expected = fast(x)
    assert not torch.allclose(after, before)
    assert relative_error(after, expected) < TOLERANCE


def test_runner_must_be_finished_once():
    fast = to_inference_form(authors_model("m0"))
    runner = native_runner.build_runner(fast)  # finished
    with pytest.raises(RuntimeError, match="finish"):
        runner.finish()
    with pytest.raises(RuntimeError, match="no steps after"):
        runner.tap()
    unfinished = native_runner._runner_class()()
    unfinished.set_input_channels(3)
    with pytest.raises(RuntimeError, match="call finish"):
        unfinished.run(torch.randn(1, 3, 64, 64))


def test_a_rejected_head_leaves_no_head():
    runner = native_runner._runner_class()()
    runner.set_input_channels(4)
    fc1, b1, fc2, b2 = torch.randn(4, 6), torch.randn(6), torch.randn(6, 5), torch.randn(5)
    with pytest.raises(RuntimeError, match="head fc2_weight_t must have 30 elements"):
        runner.set_head(fc1, b1, torch.randn(6, 4), b2)
    runner.set_head(fc1, b1, fc2, b2)  # the first call set nothing
    runner.finish()
    x = torch.rand(2, 4, 3, 5) * 8 - 1
    (logits,) = runner.run(x)
    pooled = torch.nn.functional.hardswish(x.clamp(0, 6).mean((2, 3)))
    hidden = torch.nn.functional.hardswish(pooled @ fc1 + b1)
    expected = torch.nn.functional.hardswish(hidden @ fc2 + b2)
    assert relative_error(logits, expected) < TOLERANCE


def _perturb_batchnorm(module):
    if isinstance(module, torch.nn.BatchNorm2d):
        module.running_mean.add_(0.1)


def test_unsupported_layer_falls_back_to_the_layer_path():
    model = authors_model("m0", features_only=True)
    fast = to_inference_form(model)
    fast.blocks[1].layers.append(torch.nn.Hardswish())  # no native step for it
    x = torch.randn(1, 3, 64, 64)
    assert fast.execution_path(x) == "layers (native kernels)"
    assert "Hardswish" in fast._runner_error
    with torch.no_grad():
        out = fast(x)
    assert len(out) == len(model.feature_info)


def test_runner_rejects_bad_input():
    fast = to_inference_form(authors_model("m0"))
    runner = native_runner.build_runner(fast)
    for shape in [(1, 4, 64, 64), (1, 3, 31, 64), (3, 64, 64)]:
        with pytest.raises(RuntimeError, match=r"input must be \(N, 3, H, W\) with H, W >= 32"):
            runner.run(torch.randn(shape))
    # Not float32 CPU: nothing (the inference form takes the layers), and the same through it.
    x = torch.randn(1, 3, 64, 64, dtype=torch.float64)
    assert runner.run(x) is None
    assert fast.execution_path(x) != "runner"
    with torch.no_grad():
        expected = fast.float()(x.float()).double()
        assert relative_error(fast.double()(x), expected) < TOLERANCE
    with pytest.raises(ValueError, match="MicroNet expects input of shape"):
        fast.float()(torch.randn(1, 3, 31, 64))  # the runner's error, raised as the layers do
    with pytest.raises(native_runner.RunnerUnsupported, match="InferenceMicroNet"):
        native_runner.build_runner(authors_model("m0"))
