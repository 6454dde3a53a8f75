"""tools/train_mmdet.py and tools/test_mmdet.py: the shared OpenMMLab command line with
MMDetection's scope; a short RetinaNet run on generated shapes, then evaluated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mmdet")

from micronet_backbones.openmmlab.cli import load_config  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
RETINANET = REPO_ROOT / "configs/mmdet/retinanet_micronet-m3_fpn_ms-640-800-3x_coco.py"


def _small_config(folder: Path, data: Path) -> Path:
    """RetinaNet MicroNet-M3 of configs/mmdet on the generated set at 160 px, no ImageNet
    weights, one image per iteration, a checkpoint per epoch (an MMEngine config inheriting
    the repository's, as a user writes one)."""
    root = str(data) + "/"
    text = f"""
_base_ = [{str(RETINANET)!r}]
# untrained scores sit near the class prior: keep every box so that CocoMetric has some
model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=3),
             test_cfg=dict(score_thr=0.0))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomResize', scale=[(240, 144), (240, 176)], keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(240, 160), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
metainfo = dict(classes=('square', 'circle', 'triangle'))
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(times=1, dataset=dict(
        data_root={root!r}, metainfo=metainfo, ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/train/'), filter_cfg=dict(filter_empty_gt=True, min_size=8),
        pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root={root!r}, metainfo=metainfo, ann_file='annotations/instances_val.json',
                 data_prefix=dict(img='images/val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file={root + "annotations/instances_val.json"!r})
test_evaluator = val_evaluator
param_scheduler = []
default_hooks = dict(checkpoint=dict(interval=1), logger=dict(interval=1))
"""
    path = folder / "retinanet_small.py"
    path.write_text(text)
    return path


def _run_tool(name: str, args: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / f"{name}.py"), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]


def test_the_tools_are_thin_mains_of_the_shared_command_line():
    for name in ("train_mmdet", "test_mmdet"):
        text = (REPO_ROOT / "tools" / f"{name}.py").read_text()
        assert "from micronet_backbones.openmmlab.cli import" in text
        assert "argparse" not in text and "sys.path" not in text
    assert load_config(str(RETINANET), "mmdet").default_scope == "mmdet"
    with pytest.raises(ValueError, match="config of 'mmdet'.*runs 'mmpose' configs"):
        load_config(str(RETINANET), "mmpose")


@pytest.mark.slow
def test_train_and_test_through_the_scripts(tmp_path):
    """One epoch through train_mmdet.py, then test_mmdet.py on its checkpoint (--resume is the
    shared command line's, run end to end by the pose tools' test)."""
    from micronet_backbones.synthetic.shapes import make_shapes_dataset

    data = make_shapes_dataset(
        tmp_path / "data",
        num_train=6,
        num_val=4,
        image_height=(150, 170),
        image_width=(200, 230),
        object_size=(30, 60),
        seed=0,
    ).root
    config = _small_config(tmp_path, data)
    work = tmp_path / "work"
    _run_tool(
        "train_mmdet",
        [
            str(config),
            "--work-dir",
            str(work),
            "--no-validate",
            "--cfg-options",
            "train_cfg.max_epochs=1",
        ],
    )
    assert (work / "epoch_1.pth").is_file()
    out = tmp_path / "metrics.json"
    _run_tool(
        "test_mmdet",
        [str(config), str(work / "epoch_1.pth"), "--work-dir", str(work), "--out", str(out)],
    )
    metrics = json.loads(out.read_text())
    assert {"coco/bbox_mAP", "coco/bbox_mAP_50"} <= set(metrics)
    assert (
        f"Load checkpoint from {work / 'epoch_1.pth'}"
        in sorted(work.glob("*/*.log"))[-1].read_text()
    )
