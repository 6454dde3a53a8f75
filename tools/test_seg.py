"""Evaluate a semantic segmentation model with MMEngine's Runner (MMSegmentation's usual flags).

    python tools/test_seg.py CONFIG CHECKPOINT                      # the config's test_evaluator
    python tools/test_seg.py CONFIG CHECKPOINT --out metrics.json
    torchrun --nproc_per_node 4 tools/test_seg.py CONFIG CHECKPOINT --launcher pytorch

The flags and the Runner setup are shared by every OpenMMLab tool of this repository:
``micronet_backbones.openmmlab.cli``.
"""

from __future__ import annotations

from micronet_backbones.openmmlab.cli import test_main


def main(argv: list[str] | None = None) -> dict:
    return test_main(
        argv,
        default_scope="mmseg",
        imports=["micronet_backbones.segmentation"],
        description="Evaluate a semantic segmentation model (MMSegmentation)",
    )


if __name__ == "__main__":
    main()
