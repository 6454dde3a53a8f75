"""Training and evaluation of Detectron2 detectors with a MicroNet backbone (``tools/train_net.py``).

Detectron2's ``DefaultTrainer`` with COCO evaluation, its usual command line plus
``--register-coco NAME JSON IMAGE_DIR``, and the config: Detectron2's defaults, then
``MODEL.MICRONET`` (:func:`~micronet_backbones.detection.add_micronet_config`), the config file
and the ``KEY VALUE`` overrides. ``tools/train_net.py`` and the detection quick-start are thin
mains over :func:`argument_parser`, :func:`build_config`, :func:`main` and :func:`launch_main`.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict

import detectron2._C
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch
from detectron2.evaluation import COCOEvaluator, verify_results
from detectron2.utils import comm

from .config import add_micronet_config
from .datasets import register_coco

__all__ = ["Trainer", "argument_parser", "build_config", "launch_main", "main"]

# detectron2 built without its C++ ops cannot run the fast COCOeval; pycocotools' does the same.
HAS_NATIVE_OPS = getattr(detectron2._C, "NATIVE_OPS", True)
RESULTS_FILE = "eval_results.json"  # the latest evaluation, under OUTPUT_DIR


class Trainer(DefaultTrainer):
    """Detectron2's ``DefaultTrainer`` with COCO evaluation; results also go to
    ``OUTPUT_DIR/eval_results.json`` (NaN as null)."""

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
            with open(os.path.join(cfg.OUTPUT_DIR, RESULTS_FILE), "w") as f:
                json.dump(_plain(results), f, indent=1)
        return results


def _plain(results):
    """Evaluation results (nested OrderedDicts of floats) as JSON values (NaN -> null)."""
    if isinstance(results, (dict, OrderedDict)):
        return {str(k): _plain(v) for k, v in results.items()}
    value = float(results)
    return None if math.isnan(value) else value


def argument_parser():
    """Detectron2's ``default_argument_parser`` plus ``--register-coco NAME JSON IMAGE_DIR``."""
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


def main(args):
    """One process's work: register ``--register-coco`` sets, set up, then train or evaluate."""
    for name, json_file, image_dir in args.register_coco:
        register_coco(name, json_file, image_dir)
    cfg = build_config(args)
    default_setup(cfg, args)  # logging, seeding, config dump

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


def launch_main(args):
    """:func:`main` through Detectron2's ``launch`` (one process per GPU, several machines)."""
    return launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
