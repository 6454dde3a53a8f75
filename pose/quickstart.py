"""The pose quick-start: generated stick figures, MMEngine's Runner, CocoMetric, drawn skeletons.

:func:`run_quickstart` is what ``tools/quickstart_pose.py`` runs: it writes a stick-figure set
(:func:`micronet_backbones.synthetic.make_coco_keypoints`), points the synthetic config at it
(:func:`quickstart_config`), evaluates the untrained model with ``CocoMetric``, trains it with
``Runner.train()``, evaluates again, reloads the last checkpoint with ``mmpose.apis.init_model``
and draws its predicted skeletons on val images (:func:`draw_predictions`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from micronet_backbones.openmmlab import mmengine_checkpoints
from micronet_backbones.synthetic import make_coco_keypoints

__all__ = ["draw_predictions", "quickstart_config", "run_quickstart"]


def run_quickstart(
    config: Path,
    out: Path,
    *,
    num_train: int = 400,
    num_val: int = 100,
    epochs: int | None = None,
    num_drawn: int = 12,
    seed: int = 0,
) -> dict:
    """Data under ``out/data``, Runner work dir ``out/work_dir``, ``out/predictions.png`` and
    ``out/summary.json``; returns the summary (AP before and after training, files, time)."""
    from mmengine.runner import Runner

    start = time.time()
    out = Path(out).resolve()
    print(f"[pose] writing {num_train} + {num_val} generated images to {out / 'data'}")
    data = make_coco_keypoints(out / "data", num_train=num_train, num_val=num_val, seed=seed)
    cfg = quickstart_config(config, out / "data", out / "work_dir", epochs)
    cfg.randomness = dict(seed=seed)
    runner = Runner.from_cfg(cfg)
    logging.getLogger("mmengine").setLevel(logging.WARNING)

    before = runner.test()["coco/AP"]
    print(f"[pose] untrained model: COCO AP {before:.3f}")
    runner.train()
    after = runner.test()["coco/AP"]
    print(f"[pose] after {cfg.train_cfg.max_epochs} epochs: COCO AP {after:.3f}")

    checkpoint = out / "work_dir" / f"epoch_{cfg.train_cfg.max_epochs}.pth"
    drawn = draw_predictions(
        cfg, checkpoint, data.val.ann_file, data.val.image_dir, out / "predictions.png", num_drawn
    )
    summary = {
        "config": str(config),
        "train_images": num_train,
        "val_images": num_val,
        "epochs": cfg.train_cfg.max_epochs,
        "coco_AP_untrained": round(float(before), 4),
        "coco_AP_trained": round(float(after), 4),
        "checkpoint": str(checkpoint),
        "predictions_png": str(out / "predictions.png"),
        "images_drawn": drawn,
        "seconds": round(time.time() - start, 1),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def quickstart_config(config: Path, data_root: Path, work_dir: Path, epochs: int | None = None):
    """The synthetic config pointed at ``data_root``, writing to ``work_dir``.

    Validation during training is off; evaluate with ``Runner.test()`` (the val split with
    ``CocoMetric``) before and after ``Runner.train()``. ``epochs`` rescales the schedule's
    milestones to the new length.
    """
    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    root = str(data_root).rstrip("/") + "/"
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = root
    cfg.test_evaluator.ann_file = root + "annotations/person_keypoints_val.json"
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.work_dir = str(work_dir)
    if epochs is not None:
        old = cfg.train_cfg.max_epochs
        cfg.train_cfg.max_epochs = epochs
        for scheduler in cfg.param_scheduler:
            if scheduler.get("by_epoch", True):
                scheduler.end = epochs
                if "milestones" in scheduler:
                    scheduler.milestones = [round(m * epochs / old) for m in scheduler.milestones]
    return cfg


def _pose_visualizer(**kwargs):
    """MMPose's ``PoseLocalVisualizer`` (OpenCV backend), with one NumPy 2 fix.

    MMPose 1.3.2 passes each keypoint's radius as a one-element array, which its OpenCV
    ``draw_circles`` turns into an int with ``int(radius)``; NumPy 2 refuses that for arrays
    of one dimension ("only 0-dimensional arrays can be converted to Python scalars").
    """
    from mmpose.visualization import PoseLocalVisualizer

    class QuickstartPoseVisualizer(PoseLocalVisualizer):
        def draw_circles(self, center, radius, *args, **kw):
            if self.backend == "opencv":
                radius = float(np.asarray(radius).reshape(-1)[0])
            return super().draw_circles(center, radius, *args, **kw)

    return QuickstartPoseVisualizer(**kwargs)


def draw_predictions(
    config, checkpoint: Path, ann_file: Path, image_dir: Path, out_file: Path, num_images: int
) -> int:
    """Draw predicted skeletons on the first ``num_images`` val images; returns the count."""
    from mmpose.apis import inference_topdown, init_model
    from mmpose.structures import merge_data_samples

    with mmengine_checkpoints():  # the Runner's checkpoint holds NumPy meta and HistoryBuffers
        model = init_model(config, str(checkpoint), device="cpu")
    visualizer = _pose_visualizer(name="quickstart_pose", radius=2, line_width=1)
    visualizer.set_dataset_meta(model.dataset_meta)
    coco = json.loads(Path(ann_file).read_text())
    boxes = {}
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        boxes.setdefault(ann["image_id"], []).append([x, y, x + w, y + h])
    tiles = []
    for image in coco["images"][:num_images]:
        path = str(Path(image_dir) / image["file_name"])
        results = inference_topdown(model, path, np.array(boxes[image["id"]]), bbox_format="xyxy")
        rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
        visualizer.add_datasample(
            "prediction",
            rgb,
            data_sample=merge_data_samples(results),
            draw_gt=False,
            draw_bbox=True,
            kpt_thr=0.0,
            show=False,
        )
        tiles.append(visualizer.get_image())
    columns = min(6, len(tiles))
    blank = np.zeros_like(tiles[0])
    tiles += [blank] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    grid = np.concatenate(rows, axis=0)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_file), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out_file}")
    return len(coco["images"][:num_images])
