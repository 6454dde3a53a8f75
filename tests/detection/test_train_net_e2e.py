"""End to end through tools/train_net.py on the generated shapes set: the detectors learn, --resume resumes.

Each test runs the tool as users do (a subprocess with Detectron2's command line) on the
quick-start's configs and data settings as they are, and reads the ``COCOEvaluator`` results the
tool writes to ``OUTPUT_DIR/eval_results.json``. "Before" is the same command with
``--eval-only`` and no weights: the same seed gives the same initial model. Each trained
detector is then exported with tools/export_detector.py and checked (export_checks.py).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytest.importorskip("detectron2")

from export_checks import assert_exports_match  # noqa: E402

from micronet_backbones.detection.quickstart import SHAPES  # noqa: E402
from micronet_backbones.synthetic import make_shapes_dataset  # noqa: E402

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
TRAIN_NET = REPO_ROOT / "tools" / "train_net.py"
QUICKSTART = REPO_ROOT / "configs" / "detection" / "quickstart"

FASTER_RCNN = {
    "config": QUICKSTART / "faster_rcnn_micronet_m3_fpn_shapes.yaml",
    "opts": ["DATALOADER.NUM_WORKERS", "0"],
}
RETINANET = {
    "config": QUICKSTART / "retinanet_micronet_m3_fpn_shapes.yaml",
    "opts": ["DATALOADER.NUM_WORKERS", "0"],
}


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    data = make_shapes_dataset(
        tmp_path_factory.mktemp("shapes") / "set", num_train=240, num_val=40, **SHAPES
    )
    return [
        "--register-coco",
        "shapes_train",
        str(data.train.ann_file),
        str(data.train.image_dir),
        "--register-coco",
        "shapes_val",
        str(data.val.ann_file),
        str(data.val.image_dir),
    ]


def _command(shapes, model, output_dir, flags=(), opts=()):
    """train_net.py [flags] --config-file ... --register-coco ... OUTPUT_DIR ... [opts]."""
    return [
        sys.executable,
        str(TRAIN_NET),
        *flags,
        "--config-file",
        str(model["config"]),
        *shapes,
        "OUTPUT_DIR",
        str(output_dir),
        *model["opts"],
        *opts,
    ]


def _run(command, timeout=900):
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(command)}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )
    return result


def _val_images(shapes) -> Path:
    return Path(shapes[shapes.index("shapes_val") + 2])


def _bbox(output_dir: Path) -> dict:
    return json.loads((output_dir / "eval_results.json").read_text())["bbox"]


def _ap50_before_training(shapes, model, tmp_path) -> float:
    before = tmp_path / "before"
    _run(_command(shapes, model, before, flags=["--eval-only"], opts=["MODEL.WEIGHTS", ""]))
    ap50 = _bbox(before)["AP50"]
    # COCOEvaluator reports NaN (null in the json) when the model detects nothing at all: AP 0.
    return 0.0 if ap50 is None or math.isnan(ap50) else ap50


def test_faster_rcnn_micronet_m3_fpn_learns(shapes, tmp_path, record_property):
    ap50_before = _ap50_before_training(shapes, FASTER_RCNN, tmp_path)
    _run(_command(shapes, FASTER_RCNN, tmp_path / "train"))
    after = _bbox(tmp_path / "train")
    record_property("AP50_before", ap50_before)
    record_property("AP50_after", after["AP50"])
    print(
        f"\nFaster R-CNN MicroNet-M3-FPN bbox AP50 before {ap50_before:.1f}, after {after['AP50']:.1f} (AP {after['AP']:.1f})"
    )
    assert after["AP50"] >= 50.0
    assert after["AP50"] >= ap50_before + 40.0
    # The trained detector exported (TorchScript, ONNX) gives Detectron2's detections.
    exported = assert_exports_match(
        FASTER_RCNN["config"],
        tmp_path / "train" / "model_final.pth",
        _val_images(shapes),
        tmp_path / "export",
    )
    print(f"exported Faster R-CNN matches Detectron2's inference: {exported}")


def test_retinanet_micronet_m3_fpn_learns_through_a_stop_and_resume(
    shapes, tmp_path, record_property
):
    """Stop the training at its first checkpoint (a killed process), then --resume to the end."""
    ap50_before = _ap50_before_training(shapes, RETINANET, tmp_path)
    output_dir = tmp_path / "train"
    command = _command(shapes, RETINANET, output_dir, opts=["SOLVER.CHECKPOINT_PERIOD", "100"])

    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    last_checkpoint = output_dir / "last_checkpoint"
    deadline = time.monotonic() + 900
    try:
        while not last_checkpoint.exists():
            assert process.poll() is None, "training ended before writing its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 15 minutes"
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # this test's own process group
        process.wait()
    stopped_at = last_checkpoint.read_text().strip()
    assert stopped_at.startswith("model_") and stopped_at != "model_final.pth"
    saved_iteration = int(stopped_at[len("model_") : -len(".pth")])
    assert not (output_dir / "model_final.pth").exists()

    log_before = (output_dir / "log.txt").read_text()
    _run(
        _command(
            shapes,
            RETINANET,
            output_dir,
            flags=["--resume"],
            opts=["SOLVER.CHECKPOINT_PERIOD", "100"],
        )
    )
    log = (output_dir / "log.txt").read_text()[len(log_before) :]
    assert f"Loading from {output_dir / stopped_at}" in log
    assert f"Starting training from iteration {saved_iteration + 1}" in log
    rows = [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]
    training_iterations = [
        row["iteration"] for row in rows if "total_loss" in row
    ]  # not the evaluation's row
    max_iter = yaml.safe_load(RETINANET["config"].read_text())["SOLVER"]["MAX_ITER"]
    assert training_iterations[-1] == max_iter - 1 and (output_dir / "model_final.pth").exists()

    after = _bbox(output_dir)
    record_property("AP50_before", ap50_before)
    record_property("AP50_after", after["AP50"])
    print(
        f"\nRetinaNet MicroNet-M3-FPN bbox AP50 before {ap50_before:.1f}, after {after['AP50']:.1f} (AP {after['AP']:.1f})"
    )
    assert after["AP50"] >= 50.0
    assert after["AP50"] >= ap50_before + 40.0
    # The trained detector exported (TorchScript, ONNX) gives Detectron2's detections.
    exported = assert_exports_match(
        RETINANET["config"],
        output_dir / "model_final.pth",
        _val_images(shapes),
        tmp_path / "export",
    )
    print(f"exported RetinaNet matches Detectron2's inference: {exported}")
