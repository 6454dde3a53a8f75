"""The detection quick-start: generated shapes, training through train_net's code, evaluation, PNG.

:func:`run_quickstart` is what ``tools/quickstart_detection.py`` runs: it writes a small set of
drawn shapes (:func:`micronet_backbones.synthetic.make_shapes_dataset` with :data:`SHAPES`),
registers it as ``shapes_train`` / ``shapes_val``, trains and evaluates a config with
:mod:`.training` (as ``tools/train_net.py`` does) and draws the trained model's predictions on
val images into a PNG.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from micronet_backbones.synthetic import make_shapes_dataset

from .datasets import register_coco_set
from .training import RESULTS_FILE, argument_parser, build_config, main

__all__ = ["SCORE_THRESHOLD", "SHAPES", "draw_predictions", "run_quickstart"]

# The generated set's size for the quick-start configs (configs/detection/quickstart/, trained
# and tested at a shortest side of 160): images of about 165 x 195 px, objects of 20-64 px.
SHAPES = dict(image_height=(150, 180), image_width=(170, 220), object_size=(20, 64))
SCORE_THRESHOLD = 0.5


def run_quickstart(
    config_file: str | Path,
    output: Path,
    run_name: str,
    num_train: int = 240,
    num_val: int = 40,
    opts: list[str] = (),
) -> dict:
    """Make the data under ``output/shapes_data``, train ``config_file`` into ``output/run_name``
    (``opts``: config overrides), evaluate it on the val split and draw its predictions into
    ``output/<run_name>_predictions.png``. Returns the ``COCOEvaluator`` results."""
    output = Path(output)
    data = make_shapes_dataset(
        output / "shapes_data", num_train=num_train, num_val=num_val, **SHAPES
    )
    _, val_name = register_coco_set(data, prefix="shapes")
    run_dir = output / run_name
    args = argument_parser().parse_args(
        ["--config-file", str(config_file), "OUTPUT_DIR", str(run_dir), *opts]
    )
    main(args)  # trains, then evaluates on shapes_val with COCOEvaluator
    results = json.loads((run_dir / RESULTS_FILE).read_text())
    draw_predictions(
        build_config(args), str(run_dir / "model_final.pth"), val_name,
        output / f"{run_name}_predictions.png",
    )  # fmt: skip
    return results


def draw_predictions(cfg, weights: str, dataset_name: str, out_path: Path, count: int = 8) -> None:
    """Run ``DefaultPredictor`` on the first ``count`` images of ``dataset_name``; save a grid PNG.

    Each tile is one image with the predictions scoring at least ``SCORE_THRESHOLD`` drawn by
    Detectron2's ``Visualizer`` (boxes, class names, scores); four tiles a row.
    """
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.detection_utils import read_image
    from detectron2.engine import DefaultPredictor
    from detectron2.utils.visualizer import Visualizer

    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.WEIGHTS = weights
    predictor = DefaultPredictor(cfg)
    metadata = MetadataCatalog.get(dataset_name)
    tiles = []
    for record in DatasetCatalog.get(dataset_name)[:count]:
        image_bgr = read_image(record["file_name"], format="BGR")  # DefaultPredictor takes BGR
        instances = predictor(image_bgr)["instances"].to("cpu")
        instances = instances[instances.scores >= SCORE_THRESHOLD]
        visualizer = Visualizer(image_bgr[:, :, ::-1], metadata=metadata)
        tiles.append(visualizer.draw_instance_predictions(instances).get_image())
    height = max(t.shape[0] for t in tiles)
    width = max(t.shape[1] for t in tiles)
    columns = 4
    rows = (len(tiles) + columns - 1) // columns
    grid = np.full((rows * height, columns * width, 3), 255, dtype=np.uint8)
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        top, left = row * height, column * width
        grid[top : top + tile.shape[0], left : left + tile.shape[1]] = tile
    out_path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(out_path)
