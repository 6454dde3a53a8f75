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

import sys

from micronet_backbones.detection.training import argument_parser, launch_main

if __name__ == "__main__":
    args = argument_parser().parse_args(sys.argv[1:])
    print("Command Line Args:", args)
    launch_main(args)
