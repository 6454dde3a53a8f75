#!/usr/bin/env python
"""CPU latency of MicroNet (as built and in inference form) against MobileNetV3-Small, in eager
PyTorch, torch.compile, onnxruntime and OpenVINO (when installed), plus a training step.

Prints a table (ratios to MobileNetV3-Small x0.5 in each runtime, and each network's fastest
runtime against the reference's fastest) and writes a plot of latency against MAdds. What is
measured and how: :mod:`micronet_backbones.kernels.benchmark`. ::

    python tools/benchmark.py [--threads 1] [--runs 50] [--runtimes eager compile onnxruntime]
                              [--plot output/benchmark.png]
"""

import sys

from micronet_backbones.kernels.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
