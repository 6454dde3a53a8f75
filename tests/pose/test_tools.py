"""tools/train_pose.py and tools/test_pose.py: MMPose's flags, and a resumed run through
MMEngine's Runner (checkpoints read back under torch.load's weights_only default)."""

import importlib.util
import json
from pathlib import Path

import pytest
from mmengine.config import Config

from pose_helpers import CONFIG_DIR, M3_COCO, REPO_ROOT

SYNTHETIC = CONFIG_DIR / "micronet-m3_synthetic-128x96.py"


def _load(name: str):
    path = REPO_ROOT / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"micronet_{name}_tool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_flags_map_onto_the_config():
    train = _load("train_pose")
    cfg = Config.fromfile(str(M3_COCO))
    args = train.parse_args([str(M3_COCO), "--work-dir", "w", "--resume", "--launcher", "pytorch",
                             "--cfg-options", "train_dataloader.batch_size=16", "--amp"])
    cfg = train.merge_args(cfg, args)
    assert cfg.work_dir == "w" and cfg.resume is True and cfg.load_from is None
    assert cfg.launcher == "pytorch" and cfg.train_dataloader.batch_size == 16
    assert cfg.optim_wrapper.type == "AmpOptimWrapper"

    cfg = train.merge_args(Config.fromfile(str(M3_COCO)),
                           train.parse_args([str(M3_COCO), "--resume", "ckpt.pth", "--no-validate"]))
    assert cfg.resume is True and cfg.load_from == "ckpt.pth" and cfg.val_cfg is None
    assert cfg.work_dir.endswith("micronet-m3_8xb32-250e_coco-256x192")
    with pytest.raises(SystemExit):
        train.parse_args([str(M3_COCO), "--launcher", "ray"])

    test = _load("test_pose")
    cfg = test.merge_args(Config.fromfile(str(M3_COCO)), test.parse_args(
        [str(M3_COCO), "model.pth", "--launcher", "slurm", "--cfg-options", "model.test_cfg.flip_test=False"]))
    assert cfg.load_from == "model.pth" and cfg.launcher == "slurm"
    assert cfg.model.test_cfg.flip_test is False


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


def test_train_resume_and_test_through_the_runner(small_coco, tmp_path):
    train, test = _load("train_pose"), _load("test_pose")
    work = tmp_path / "work"
    schedule = ["param_scheduler=[]", "default_hooks.checkpoint.interval=1"]
    train.main([str(SYNTHETIC), "--work-dir", str(work), "--no-validate", "--cfg-options",
                *_data_options(small_coco), *schedule, "train_cfg.max_epochs=1"])
    assert (work / "epoch_1.pth").is_file()

    train.main([str(SYNTHETIC), "--work-dir", str(work), "--no-validate", "--resume",
                "--cfg-options", *_data_options(small_coco), *schedule, "train_cfg.max_epochs=2"])
    assert (work / "epoch_2.pth").is_file()
    logs = sorted(work.glob("*/*.log"))
    assert "resumed epoch: 1" in logs[-1].read_text()

    out = tmp_path / "metrics.json"
    metrics = test.main([str(SYNTHETIC), str(work / "epoch_2.pth"), "--work-dir", str(work),
                         "--out", str(out), "--cfg-options", *_data_options(small_coco)])
    assert 0.0 <= metrics["coco/AP"] <= 1.0
    assert json.loads(out.read_text())["coco/AP"] == pytest.approx(metrics["coco/AP"])
