"""Parameters and multiply-adds of a model as fvcore counts them (one multiply-add = one "flop").

fvcore counts convolutions, linear layers, BatchNorm and average pooling; elementwise products,
maxima and channel shifts are not counted, so the paper's own MAdds figures (4M, 6M, 12M, 21M
for M0-M3) are lower than fvcore's. fvcore is an optional dependency, imported when counting.
"""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from .registry import canonical_name, create_model

__all__ = ["PAPER_MADDS", "count_classifier", "count_model"]

# The paper's MAdds of the ImageNet classifiers at 224 x 224.
PAPER_MADDS = {"micronet_m0": 4e6, "micronet_m1": 6e6, "micronet_m2": 12e6, "micronet_m3": 21e6}


def count_model(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """(parameters, fvcore multiply-adds) of ``model`` run on zeros of ``input_shape``
    (e.g. (1, 3, 224, 224)); ``model`` should be in eval mode.

    Raises ``ImportError`` naming the package when fvcore is not installed.
    """
    with warnings.catch_warnings():  # fvcore's import touches the deprecated torch.jit.script
        warnings.simplefilter("ignore")
        try:
            from fvcore.nn import FlopCountAnalysis
        except ImportError as error:
            raise ImportError(
                "counting multiply-adds needs fvcore, which is not installed: pip install fvcore"
            ) from error
    params = sum(p.numel() for p in model.parameters())
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    with warnings.catch_warnings():  # tracing warns about shape checks inside forward
        warnings.simplefilter("ignore")
        analysis = FlopCountAnalysis(model, torch.zeros(*input_shape))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        madds = int(analysis.total())
    return params, madds


def count_classifier(name: str, size: int = 224) -> tuple[int, int]:
    """(parameters, fvcore multiply-adds) of the ImageNet classifier ``name`` ("m3" or
    "micronet_m3") on a 1 x 3 x size x size input."""
    return count_model(create_model(canonical_name(name)).eval(), (1, 3, size, size))
