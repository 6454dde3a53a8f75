#!/usr/bin/env python
"""Train or evaluate a MicroNet on ImageNet (or any folder in its layout), on any number of
GPUs and machines with ``torchrun``, or on CPUs with gloo; optionally with mutual learning
(``--mutual-learning``: together with its full-rank partner).

    torchrun --nproc_per_node 8 tools/train_imagenet.py --arch micronet_m1 --data /data/imagenet
    python tools/train_imagenet.py --help

The command line, its examples and outputs: :mod:`micronet_backbones.imagenet.cli`.
"""

from micronet_backbones.imagenet.cli import main

if __name__ == "__main__":
    main()
