#!/usr/bin/env python
"""Train and evaluate Detectron2 detectors with a MicroNet backbone.

Detectron2's usual command line (``--config-file``, ``--num-gpus``, ``--num-machines``,
``--machine-rank``, ``--dist-url``, ``--resume``, ``--eval-only``, then ``KEY VALUE`` config
overrides); training runs through Detectron2's ``DefaultTrainer`` and ``launch``, so multi-GPU
and multi-machine jobs work as with Detectron2's own ``tools/train_net.py``. Evaluation uses
``COCOEvaluator`` (with pycocotools when detectron2 has no native ops) on every dataset of
``DATASETS.TEST``; the latest results are also written to ``OUTPUT_DIR/eval_results.json``.

COCO 2017 (Detectron2's built-in ``coco_2017_train`` / ``coco_2017_val``, read from
``$DETECTRON2_DATASETS/coco``, default ``./datasets/coco``)::

    python tools/train_net.py --num-gpus 8 \\
        --config-file configs/detection/faster_rcnn_micronet_m3_fpn_3x.yaml
    python tools/train_net.py --num-gpus 8 --resume \\
        --config-file configs/detection/faster_rcnn_micronet_m3_fpn_3x.yaml     # after a stop
    python tools/train_net.py --eval-only \\
        --config-file configs/detection/faster_rcnn_micronet_m3_fpn_3x.yaml \\
        MODEL.WEIGHTS output/faster_rcnn_micronet_m3_fpn_3x/model_final.pth

Any other data set in COCO's json format, without code: ``--register-coco NAME JSON IMAGE_DIR``
(repeatable) registers it with ``register_coco_instances``; name it in ``DATASETS.TRAIN`` /
``DATASETS.TEST``. A CPU run needs ``MODEL.DEVICE cpu``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import OrderedDict

import detectron2._C
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch
from detectron2.evaluation import COCOEvaluator, verify_results
from detectron2.utils import comm

from micronet_backbones.detection import add_micronet_config

# detectron2 built without its C++ ops cannot run the fast COCOeval; pycocotools' does the same.
HAS_NATIVE_OPS = getattr(detectron2._C, "NATIVE_OPS", True)


class Trainer(DefaultTrainer):
    """Detectron2's ``DefaultTrainer`` with COCO evaluation."""

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=HAS_NATIVE_OPS)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        results = super().test(cfg, model, evaluators)
        if comm.is_main_process() and cfg.OUTPUT_DIR:
            os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
            with open(os.path.join(cfg.OUTPUT_DIR, "eval_results.json"), "w") as f:
                json.dump(_plain(results), f, indent=1)
        return results


def _plain(results):
    """Evaluation results (nested OrderedDicts of floats) as JSON values (NaN -> null)."""
    if isinstance(results, (dict, OrderedDict)):
        return {str(k): _plain(v) for k, v in results.items()}
    value = float(results)
    return None if math.isnan(value) else value


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument(
        "--register-coco",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "JSON", "IMAGE_DIR"),
        help="register a COCO-format data set under NAME (repeatable), for DATASETS.TRAIN / TEST",
    )
    return parser


def register_datasets(entries) -> None:
    """``register_coco_instances`` for each (name, json, image_dir) of ``--register-coco``."""
    for name, json_file, image_dir in entries:
        if not os.path.isfile(json_file):
            raise FileNotFoundError(f"--register-coco {name}: no annotation file at {json_file}")
        if not os.path.isdir(image_dir):
            raise FileNotFoundError(f"--register-coco {name}: no image folder at {image_dir}")
        register_coco_instances(name, {}, json_file, image_dir)


def build_config(args):
    """The frozen config: Detectron2's defaults + ``MODEL.MICRONET``, the file, the overrides."""
    cfg = get_cfg()
    add_micronet_config(cfg)
    if args.config_file:
        cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            f"MODEL.DEVICE is {cfg.MODEL.DEVICE!r} but CUDA is not available here; "
            "add `MODEL.DEVICE cpu` to the command line to run on the CPU"
        )
    cfg.freeze()
    return cfg


def setup(args):
    """``build_config``, then Detectron2's ``default_setup`` (logging, seeding, config dump)."""
    cfg = build_config(args)
    default_setup(cfg, args)
    return cfg


def main(args):
    register_datasets(args.register_coco)
    cfg = setup(args)

    if args.eval_only:
        model = Trainer.build_model(cfg)
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = Trainer.test(cfg, model)
        if comm.is_main_process():
            verify_results(cfg, results)
        return results

    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


def cli(argv=None):
    args = argument_parser().parse_args(argv)
    print("Command Line Args:", args)
    return launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


if __name__ == "__main__":
    cli(sys.argv[1:])
