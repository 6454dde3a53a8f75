"""tools/train_seg.py and tools/test_seg.py: thin mains of the shared OpenMMLab command line;
a stopped run continues with --resume, and the test tool evaluates with IoUMetric."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from seg_helpers import CITYSCAPES, REPO_ROOT, SYNTHETIC, data_options

from micronet_backbones.openmmlab import MMENGINE_CHECKPOINT_GLOBALS
from micronet_backbones.openmmlab.cli import test_main, train_main

SEG = dict(default_scope="mmseg", imports=["micronet_backbones.segmentation"])


def test_the_tools_are_thin_mains_of_the_shared_command_line():
    for name in ("train_seg", "test_seg"):
        text = (REPO_ROOT / "tools" / f"{name}.py").read_text()
        assert "from micronet_backbones.openmmlab.cli import" in text
        assert 'default_scope="mmseg"' in text
        assert "argparse" not in text and "sys.path" not in text


def test_a_config_of_another_toolbox_is_refused():
    pose_config = REPO_ROOT / "configs" / "pose" / "micronet-m3_8xb32-250e_coco-256x192.py"
    with pytest.raises(ValueError, match="config of 'mmpose'.*runs 'mmseg' configs"):
        test_main([str(pose_config), "model.pth"], **SEG)
    with pytest.raises(SystemExit):  # MMSegmentation's launchers only
        train_main([str(CITYSCAPES["m3"]), "--launcher", "ray"], **SEG)


def _run_tool(name: str, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / f"{name}.py"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def _iteration(checkpoint) -> int:
    with torch.serialization.safe_globals(MMENGINE_CHECKPOINT_GLOBALS):
        return torch.load(checkpoint, map_location="cpu", weights_only=True)["meta"]["iter"]


def test_a_stopped_run_resumes_and_the_test_tool_evaluates(small_scenes, tmp_path):
    """Two iterations in this process (the shared main), then the scripts as a user runs them:
    train_seg.py --resume continues from iteration 2 to 4, test_seg.py evaluates iteration 4."""
    work = tmp_path / "work"
    small = [
        *data_options(small_scenes),
        "train_dataloader.batch_size=4",
        "model.data_preprocessor.size=(64,64)",
        "param_scheduler=[]",
        "default_hooks.checkpoint.interval=2",
    ]
    train_main(
        [
            str(SYNTHETIC),
            "--work-dir",
            str(work),
            "--no-validate",
            "--cfg-options",
            *small,
            "train_cfg.max_iters=2",
        ],
        **SEG,
    )
    assert _iteration(work / "iter_2.pth") == 2 and not (work / "iter_4.pth").exists()

    _run_tool(
        "train_seg",
        [
            str(SYNTHETIC),
            "--work-dir",
            str(work),
            "--no-validate",
            "--resume",
            "--cfg-options",
            *small,
            "train_cfg.max_iters=4",
        ],
    )
    assert _iteration(work / "iter_4.pth") == 4
    log = sorted(work.glob("*/*.log"))[-1].read_text()
    assert "resumed epoch: 0, iter: 2" in log

    out = tmp_path / "metrics.json"
    _run_tool(
        "test_seg",
        [
            str(SYNTHETIC),
            str(work / "iter_4.pth"),
            "--work-dir",
            str(work),
            "--out",
            str(out),
            "--cfg-options",
            *data_options(small_scenes),
        ],
    )
    written = json.loads(out.read_text())
    log = sorted(work.glob("*/*.log"))[-1].read_text()
    assert f"Load checkpoint from {work / 'iter_4.pth'}" in log
    # the same evaluation in this process gives the figures the script wrote
    metrics = test_main(
        [
            str(SYNTHETIC),
            str(work / "iter_4.pth"),
            "--work-dir",
            str(work),
            "--cfg-options",
            *data_options(small_scenes),
        ],
        **SEG,
    )
    assert set(written) == set(metrics) >= {"aAcc", "mIoU", "mAcc"}
    assert written["mIoU"] == pytest.approx(metrics["mIoU"])
