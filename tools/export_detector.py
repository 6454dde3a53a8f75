#!/usr/bin/env python
"""Export a trained MicroNet detector (Faster R-CNN, RetinaNet) to TorchScript or ONNX.

Detectron2's ``tools/deploy/export_model.py`` command line, for its ``tracing`` method
(``TracingAdapter`` + ``torch.jit.trace``; caffe2 does not exist on torch 2.x)::

    python tools/export_detector.py --export-method tracing --format torchscript \\
        --config-file configs/detection/quickstart/faster_rcnn_micronet_m3_fpn_shapes.yaml \\
        --sample-image image.png --output output/export/faster_rcnn \\
        MODEL.WEIGHTS output/quickstart/detection/faster_rcnn/model_final.pth

writes ``model.ts`` (and Detectron2's IR dumps) or ``model.onnx`` into ``--output``. The
MicroNet backbone is exported in the core's exact inference form (``--as-built`` keeps it as
trained). The exported model is then run on the sample image and checked against Detectron2's
own inference of the same model (``--no-check`` skips this). What it takes and returns:
``micronet_backbones.detection.export`` (module docstring). ``--benchmark N`` times, in this
process, the whole detector as built and in inference form, eager and exported, round-robin
over N rounds (1 thread, batch 1) and prints the medians and ratios.
"""

from __future__ import annotations

from micronet_backbones.detection.export_cli import main

if __name__ == "__main__":
    main()
