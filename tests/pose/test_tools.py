"""tools/train_pose.py and tools/test_pose.py: MMPose's flags (the shared OpenMMLab command
line, ``micronet_backbones.openmmlab.cli``), and a resumed run through MMEngine's Runner
(checkpoints read back under torch.load's weights_only default)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mmengine.config import Config
from pose_helpers import CONFIG_DIR, M3_COCO, REPO_ROOT

from micronet_backbones.openmmlab import cli

SYNTHETIC = CONFIG_DIR / "micronet-m3_synthetic-128x96.py"


def test_train_flags_map_onto_the_config():
    cfg = Config.fromfile(str(M3_COCO))
    args = cli.parse(
        cli.train_parser(),
        [
            str(M3_COCO),
            "--work-dir",
            "w",
            "--resume",
            "--launcher",
            "pytorch",
            "--cfg-options",
            "train_dataloader.batch_size=16",
            "--amp",
        ],
    )
    cfg = cli.apply_train_args(cfg, args)
    assert cfg.work_dir == "w" and cfg.resume is True and cfg.load_from is None
    assert cfg.launcher == "pytorch" and cfg.train_dataloader.batch_size == 16
    assert cfg.optim_wrapper.type == "AmpOptimWrapper"

    cfg = cli.apply_train_args(
        Config.fromfile(str(M3_COCO)),
        cli.parse(cli.train_parser(), [str(M3_COCO), "--resume", "ckpt.pth", "--no-validate"]),
    )
    assert cfg.resume is True and cfg.load_from == "ckpt.pth" and cfg.val_cfg is None
    assert cfg.work_dir.endswith("micronet-m3_8xb32-250e_coco-256x192")
    with pytest.raises(SystemExit):
        cli.parse(cli.train_parser(), [str(M3_COCO), "--launcher", "ray"])

    cfg = cli.apply_test_args(
        Config.fromfile(str(M3_COCO)),
        cli.parse(
            cli.test_parser(),
            [
                str(M3_COCO),
                "model.pth",
                "--launcher",
                "slurm",
                "--cfg-options",
                "model.test_cfg.flip_test=False",
            ],
        ),
    )
    assert cfg.load_from == "model.pth" and cfg.launcher == "slurm"
    assert cfg.model.test_cfg.flip_test is False


def test_a_config_of_another_toolbox_is_refused():
    assert cli.load_config(str(M3_COCO), "mmpose").default_scope == "mmpose"
    with pytest.raises(ValueError, match="config of 'mmpose'.*runs 'mmseg' configs"):
        cli.load_config(str(M3_COCO), "mmseg")


def test_the_tools_are_thin_mains_of_the_shared_command_line():
    for name in ("train_pose", "test_pose"):
        text = (REPO_ROOT / "tools" / f"{name}.py").read_text()
        assert "from micronet_backbones.openmmlab.cli import" in text
        assert "argparse" not in text and "sys.path" not in text


def _data_options(root: Path) -> list[str]:
    root = str(root) + "/"
    return [
        f"train_dataloader.dataset.data_root={root}",
        f"val_dataloader.dataset.data_root={root}",
        f"test_dataloader.dataset.data_root={root}",
        f"val_evaluator.ann_file={root}annotations/person_keypoints_val.json",
        f"test_evaluator.ann_file={root}annotations/person_keypoints_val.json",
        "train_dataloader.batch_size=8",
    ]


def _run_tool(name: str, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / f"{name}.py"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def test_train_resume_and_test_through_the_runner(small_coco, tmp_path):
    """Epoch 1 in this process (the shared main), then the two scripts as a user runs them:
    train_pose.py --resume continues to epoch 2, test_pose.py evaluates it (and the shared main
    does again, in this process)."""
    work = tmp_path / "work"
    schedule = ["param_scheduler=[]", "default_hooks.checkpoint.interval=1"]
    cli.train_main(
        [
            str(SYNTHETIC),
            "--work-dir",
            str(work),
            "--no-validate",
            "--cfg-options",
            *_data_options(small_coco),
            *schedule,
            "train_cfg.max_epochs=1",
        ],
        default_scope="mmpose",
        imports=["micronet_backbones.pose"],
    )
    assert (work / "epoch_1.pth").is_file()

    _run_tool(
        "train_pose",
        [
            str(SYNTHETIC),
            "--work-dir",
            str(work),
            "--no-validate",
            "--resume",
            "--cfg-options",
            *_data_options(small_coco),
            *schedule,
            "train_cfg.max_epochs=2",
        ],
    )
    assert (work / "epoch_2.pth").is_file()
    logs = sorted(work.glob("*/*.log"))
    assert "resumed epoch: 1" in logs[-1].read_text()

    out = tmp_path / "metrics.json"
    _run_tool(
        "test_pose",
        [
            str(SYNTHETIC),
            str(work / "epoch_2.pth"),
            "--work-dir",
            str(work),
            "--out",
            str(out),
            "--cfg-options",
            *_data_options(small_coco),
        ],
    )
    written = json.loads(out.read_text())
    # the same evaluation in this process gives the figures the script wrote
    metrics = cli.test_main(
        [
            str(SYNTHETIC),
            str(work / "epoch_2.pth"),
            "--work-dir",
            str(work),
            "--cfg-options",
            *_data_options(small_coco),
        ],
        default_scope="mmpose",
        imports=["micronet_backbones.pose"],
    )
    assert 0.0 <= metrics["coco/AP"] <= 1.0
    assert written["coco/AP"] == pytest.approx(metrics["coco/AP"])
    logs = sorted(work.glob("*/*.log"))
    assert f"Load checkpoint from {work / 'epoch_2.pth'}" in logs[-1].read_text()
