"""The authors' MicroNet ImageNet checkpoint as a Detectron2 ``MODEL.WEIGHTS`` file.

:func:`convert` loads the checkpoint into the core's MicroNet
(:func:`micronet_backbones.load_pretrained`: the authors' key names are mapped to ours, the
classifier keys are skipped by name and any other mismatch stops the conversion with the keys
named) and returns ``{"model": state_dict, "__author__": "micronet_backbones", ...}``: the
backbone's tensors under ``prefix`` (default ``backbone.bottom_up.micronet.``, the place of the
MicroNet inside ``build_micronet_fpn`` and ``build_micronet_retinanet_fpn``; use
``backbone.micronet.`` for ``build_micronet_backbone`` alone). BatchNorm's ``num_batches_tracked``
counters are left out, as in Detectron2's own ImageNet weights (FrozenBatchNorm2d has none).
:func:`main` is ``tools/convert_pretrained.py``'s command line.
"""

from __future__ import annotations

import argparse
import sys

import torch

import micronet_backbones as core

__all__ = ["DEFAULT_PREFIX", "convert", "main"]

DEFAULT_PREFIX = "backbone.bottom_up.micronet."


def convert(source: str, arch: str, prefix: str = DEFAULT_PREFIX) -> dict:
    """The Detectron2 checkpoint dict for the MicroNet checkpoint at ``source``.

    Raises ``micronet_backbones.CheckpointError`` (or ``FileNotFoundError``) when the checkpoint
    does not fit ``arch`` ("m3" or "micronet_m3").
    """
    arch = core.canonical_name(arch)
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
    """``SOURCE OUTPUT --arch ARCH [--prefix P]``: convert and ``torch.save``; 1 on a bad
    checkpoint (the error printed), argparse's exit for bad arguments."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", help="the authors' checkpoint (path or URL), e.g. micronet-m3.pth"
    )
    parser.add_argument("output", help="where to write the Detectron2 checkpoint (.pth)")
    parser.add_argument(
        "--arch",
        required=True,
        help=f"the checkpoint's architecture: {', '.join(core.list_models())}",
    )
    parser.add_argument(
        "--prefix",
        default=DEFAULT_PREFIX,
        help=f"key prefix of the MicroNet inside the Detectron2 model (default: {DEFAULT_PREFIX})",
    )
    args = parser.parse_args(argv)
    if not args.output.endswith(".pth"):
        parser.error(
            "output must be a .pth file (Detectron2 reads other suffixes differently), "
            f"got {args.output}"
        )
    try:
        arch = core.canonical_name(args.arch)
    except ValueError as error:
        parser.error(f"--arch: {error}")
    try:
        checkpoint = convert(args.source, arch, args.prefix)
    except (core.CheckpointError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    torch.save(checkpoint, args.output)
    print(
        f"wrote {args.output}: {len(checkpoint['model'])} tensors of {arch} under "
        f"{args.prefix!r} ({checkpoint['classifier_keys_skipped']} classifier keys skipped)"
    )
    return 0
