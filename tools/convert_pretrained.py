#!/usr/bin/env python
"""Turn the authors' MicroNet ImageNet checkpoint into a Detectron2 ``MODEL.WEIGHTS`` file.

    python tools/convert_pretrained.py micronet-m3.pth micronet_m3_detectron2.pth --arch micronet_m3

then train with ``MODEL.WEIGHTS micronet_m3_detectron2.pth MODEL.MICRONET.WEIGHTS ""``.

The checkpoint is first loaded into the core's MicroNet (``micronet_backbones.load_pretrained``):
the authors' key names are mapped to ours, the classifier keys are skipped by name and any
other mismatch (missing or unexpected key, wrong shape, another arch) stops the conversion with
the keys named. The output is ``{"model": state_dict, "__author__": "micronet_backbones"}`` saved
with ``torch.save``: the backbone's tensors under ``--prefix`` (default
``backbone.bottom_up.micronet.``, the place of the MicroNet inside ``build_micronet_fpn`` and
``build_micronet_retinanet_fpn``; use ``backbone.micronet.`` for ``build_micronet_backbone``
alone). BatchNorm's ``num_batches_tracked`` counters are left out, as in Detectron2's own
ImageNet weights (FrozenBatchNorm2d has none). Detectron2 then loads it like its R-50 weights:
the FPN and the heads start from their own initialisation and are listed as not found in the
checkpoint.

The input is read with ``torch.load(..., weights_only=True)``: the authors' ``.pth`` (bare or
under ``state_dict``, with or without ``module.``) or a checkpoint in our own names.
"""

from __future__ import annotations

import argparse
import sys

import torch

import micronet_backbones as core

DEFAULT_PREFIX = "backbone.bottom_up.micronet."


def convert(source: str, arch: str, prefix: str = DEFAULT_PREFIX) -> dict:
    """The Detectron2 checkpoint dict for the MicroNet checkpoint at ``source``.

    Raises ``micronet_backbones.CheckpointError`` (or ``FileNotFoundError``) when the checkpoint
    does not fit ``arch``.
    """
    model = core.create_model(arch, features_only=True)
    result = core.load_pretrained(model, source)
    state_dict = {
        prefix + key: value
        for key, value in model.state_dict().items()
        if not key.endswith("num_batches_tracked")
    }
    return {
        "model": state_dict,
        "__author__": "micronet_backbones",
        "micronet_arch": arch,
        "classifier_keys_skipped": len(result.skipped),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="the authors' checkpoint (path or URL), e.g. micronet-m3.pth")
    parser.add_argument("output", help="where to write the Detectron2 checkpoint (.pth)")
    parser.add_argument("--arch", required=True, choices=core.list_models(), help="the checkpoint's architecture")
    parser.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help=f"key prefix of the MicroNet inside the Detectron2 model (default: {DEFAULT_PREFIX})",
    )
    args = parser.parse_args(argv)
    if not args.output.endswith(".pth"):
        parser.error(f"output must be a .pth file (Detectron2 reads other suffixes differently), got {args.output}")
    try:
        checkpoint = convert(args.source, args.arch, args.prefix)
    except (core.CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    torch.save(checkpoint, args.output)
    print(
        f"wrote {args.output}: {len(checkpoint['model'])} tensors of {args.arch} under "
        f"{args.prefix!r} ({checkpoint['classifier_keys_skipped']} classifier keys skipped)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
