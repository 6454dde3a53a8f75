"""MMEngine's own checkpoints load under torch.load(weights_only=True) inside
``mmengine_checkpoints()`` only; importing an adapter leaves MMEngine's loader alone."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("mmengine")

from mmengine.logging import HistoryBuffer  # noqa: E402
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint  # noqa: E402

from micronet_backbones.openmmlab import mmengine_checkpoints  # noqa: E402


def _runner_like_checkpoint(path):
    """What MMEngine's Runner writes besides tensors: NumPy meta and HistoryBuffers."""
    buffer = HistoryBuffer()
    buffer.update(1.5)
    torch.save(
        {
            "meta": {"dataset_meta": {"sigmas": np.linspace(0.1, 0.2, 17), "flip": np.int64(3)}},
            "state_dict": {"w": torch.ones(2)},
            "message_hub": {"log_scalars": {"loss": buffer}},
        },
        path,
    )
    return path


class Arbitrary:
    """Any other pickled object: refused even inside the block."""


def test_runner_checkpoints_load_inside_the_block_only(tmp_path):
    path = str(_runner_like_checkpoint(tmp_path / "epoch_1.pth"))
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        _load_checkpoint(path, map_location="cpu")
    with mmengine_checkpoints():
        checkpoint = _load_checkpoint(path, map_location="cpu")
    np.testing.assert_allclose(
        checkpoint["meta"]["dataset_meta"]["sigmas"], np.linspace(0.1, 0.2, 17)
    )
    assert checkpoint["message_hub"]["log_scalars"]["loss"].current() == 1.5
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        _load_checkpoint(path, map_location="cpu")  # the allowance ended with the block


def test_other_objects_are_still_refused_inside_the_block(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "extra": Arbitrary()}, path)
    with mmengine_checkpoints(), pytest.raises(pickle.UnpicklingError, match="Arbitrary"):
        _load_checkpoint(str(path), map_location="cpu")


@pytest.mark.parametrize(
    "adapter, toolbox",
    [("micronet_backbones.openmmlab", "mmengine"), ("micronet_backbones.pose", "mmpose")],
)
def test_importing_an_adapter_leaves_mmengines_loader_alone(adapter, toolbox):
    pytest.importorskip(toolbox)
    code = (
        "import importlib, sys\n"
        "from mmengine.runner import checkpoint\n"
        "before = dict(checkpoint.CheckpointLoader._schemes)\n"
        f"importlib.import_module({adapter!r})\n"
        "after = checkpoint.CheckpointLoader._schemes\n"
        "assert after == before, 'schemes changed'\n"
        "assert after[''] is checkpoint.load_from_local, after['']\n"
        "print('unchanged')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "unchanged"
    assert CheckpointLoader._schemes[""].__module__ == "mmengine.runner.checkpoint"
