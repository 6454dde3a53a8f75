#!/usr/bin/env python
"""Print params and fvcore multiply-adds of MicroNet-M0 ... M3 at 224 x 224.

fvcore counts one multiply-add as one "flop" (convolutions, linear layers, BatchNorm, average
pooling); elementwise products, maxima and channel shifts are not counted. The paper's own
MAdds figures (4M, 6M, 12M, 21M) count fewer ops, hence the two columns.

    python tools/flops.py [micronet_m0 ...]
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

import torch

try:
    import micronet_backbones as mb
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import micronet_backbones as mb

PAPER_MADDS = {"micronet_m0": "4M", "micronet_m1": "6M", "micronet_m2": "12M", "micronet_m3": "21M"}


def count(name: str, size: int = 224) -> tuple[int, int]:
    """(parameters, fvcore multiply-adds) of the classifier ``name`` on a 1 x 3 x size x size input."""
    with warnings.catch_warnings():  # fvcore's import touches the deprecated torch.jit.script
        warnings.simplefilter("ignore", FutureWarning)
        from fvcore.nn import FlopCountAnalysis

    model = mb.create_model(name).eval()
    params = sum(p.numel() for p in model.parameters())
    analysis = FlopCountAnalysis(model, torch.zeros(1, 3, size, size))
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    return params, int(analysis.total())


def table(names: list[str], size: int = 224) -> str:
    rows = [f"| arch | params | fvcore MAdds ({size}x{size}) | paper MAdds |", "| --- | ---: | ---: | ---: |"]
    for name in names:
        params, madds = count(name, size)
        rows.append(f"| {name} | {params:,} | {madds / 1e6:.2f}M | {PAPER_MADDS.get(name, '-')} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=mb.list_models(), help="models to count")
    parser.add_argument("--size", type=int, default=224, help="input height and width")
    args = parser.parse_args(argv)
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    print(table(args.names, args.size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
