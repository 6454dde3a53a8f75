#!/usr/bin/env python
"""Segmentation quick-start: train MicroNet-M3 + MR-ASPP on a generated set of shape scenes.

1. writes a small semantic-segmentation set (four shape classes + background, objects from a
   few pixels to half the image, textured backgrounds) under ``OUT/data`` (see
   ``micronet_backbones.synthetic.segmentation_scenes``);
2. evaluates the untrained model with MMSegmentation's ``IoUMetric``, trains it from scratch
   with MMEngine's ``Runner`` and ``configs/segmentation/micronet-m3_mraspp_synthetic-128x128.py``,
   and evaluates it again;
3. reloads the saved checkpoint with ``mmseg.apis.init_model``, runs ``inference_model`` on
   validation images and draws image | ground truth | predicted masks with MMSegmentation's
   ``SegLocalVisualizer`` into ``OUT/predictions.png``;
4. writes the figures to ``OUT/summary.json``.

Runs on 2 CPU cores in about 3 minutes, downloads nothing.

    python tools/quickstart_segmentation.py [--out output/quickstart/segmentation] [--iters N]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "segmentation" / "micronet-m3_mraspp_synthetic-128x128.py"


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "output" / "quickstart" / "segmentation")
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--iters", type=int, default=None, help="default: the config's")
    parser.add_argument("--num-train", type=int, default=300)
    parser.add_argument("--num-val", type=int, default=60)
    parser.add_argument("--num-drawn", type=int, default=8, help="images in predictions.png")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def quickstart_config(config: Path, data_root: Path, work_dir: Path, iters: int | None = None):
    """The synthetic config pointed at ``data_root``, writing to ``work_dir``.

    Validation during training is off; evaluate with ``Runner.test()`` (the val split with
    ``IoUMetric``) before and after ``Runner.train()``. ``iters`` shortens or lengthens the
    schedule (its cosine decay and checkpoint follow).
    """
    from micronet_backbones.openmmlab.cli import load_config

    cfg = load_config(str(config), "mmseg", ["micronet_backbones.segmentation"])
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.dataset.data_root = str(data_root)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.work_dir = str(work_dir)
    if iters is not None:
        cfg.train_cfg.max_iters = iters
        cfg.default_hooks.checkpoint.interval = iters
        for scheduler in cfg.param_scheduler:
            if scheduler.type == "CosineAnnealingLR":
                scheduler.T_max = scheduler.end = iters
    return cfg


def draw_predictions(
    config, checkpoint: Path, image_dir: Path, label_dir: Path, out_file: Path, num_images: int
) -> int:
    """Draw image | ground truth | prediction for the first ``num_images`` val images into one PNG.

    Returns the number of images drawn.
    """
    from mmengine.structures import PixelData
    from mmseg.apis import inference_model, init_model
    from mmseg.visualization import SegLocalVisualizer

    from micronet_backbones.openmmlab import mmengine_checkpoints

    with mmengine_checkpoints():
        model = init_model(config, str(checkpoint), device="cpu")
    visualizer = SegLocalVisualizer(name="quickstart_segmentation", alpha=0.7)
    visualizer.dataset_meta = model.dataset_meta
    tiles = []
    for path in sorted(Path(image_dir).glob("*.png"))[:num_images]:
        result = inference_model(model, str(path))
        labels = cv2.imread(str(Path(label_dir) / path.name), cv2.IMREAD_UNCHANGED)
        result.gt_sem_seg = PixelData(data=torch.from_numpy(labels.astype(np.int64))[None])
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        drawn = []
        for gt in (True, False):  # the visualizer keeps the last drawing: one call for each
            visualizer.add_datasample(
                "prediction", rgb, data_sample=result, draw_gt=gt, draw_pred=not gt,
                show=False, with_labels=False,
            )  # fmt: skip
            drawn.append(visualizer.get_image())
        # one tile: the image, the ground truth and the prediction drawn over it
        tiles.append(np.concatenate([rgb, *drawn], axis=1))
    count = len(tiles)
    columns = 2 if len(tiles) > 1 else 1
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    out_file.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_file), cv2.cvtColor(np.concatenate(rows), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {out_file}")
    return count


def main(argv: list[str] | None = None) -> dict:
    args = _parse_args(argv)
    from mmengine.runner import Runner

    from micronet_backbones.openmmlab import mmengine_checkpoints
    from micronet_backbones.synthetic.segmentation_scenes import LABELS, make_segmentation_scenes

    start = time.time()
    out = args.out.resolve()
    print(
        f"[segmentation] writing {args.num_train} + {args.num_val} generated images to "
        f"{out / 'data'}"
    )
    scenes = make_segmentation_scenes(
        out / "data", num_train=args.num_train, num_val=args.num_val, seed=args.seed
    )
    cfg = quickstart_config(args.config, out / "data", out / "work_dir", args.iters)
    cfg.randomness = dict(seed=args.seed)
    runner = Runner.from_cfg(cfg)
    logging.getLogger("mmengine").setLevel(logging.WARNING)

    before = runner.test()["mIoU"]
    print(f"[segmentation] untrained model: mIoU {before:.1f}")
    with mmengine_checkpoints():
        runner.train()
    after = runner.test()["mIoU"]
    iters = cfg.train_cfg.max_iters
    print(f"[segmentation] after {iters} iterations: mIoU {after:.1f}")

    checkpoint = out / "work_dir" / f"iter_{iters}.pth"
    drawn = draw_predictions(
        cfg,
        checkpoint,
        scenes.val.image_dir,
        scenes.val.extra_dir(LABELS),
        out / "predictions.png",
        args.num_drawn,
    )
    summary = {
        "config": str(
            args.config.relative_to(ROOT) if args.config.is_relative_to(ROOT) else args.config
        ),
        "train_images": args.num_train,
        "val_images": args.num_val,
        "iterations": iters,
        "mIoU_untrained": round(float(before), 2),
        "mIoU_trained": round(float(after), 2),
        "checkpoint": str(checkpoint),
        "predictions_png": str(out / "predictions.png"),
        "images_drawn": drawn,
        "seconds": round(time.time() - start, 1),
        "torch_threads": torch.get_num_threads(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()
