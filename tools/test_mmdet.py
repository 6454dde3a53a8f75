"""Evaluate an MMDetection detector with MMEngine's Runner (MMDetection's usual flags).

    python tools/test_mmdet.py CONFIG CHECKPOINT [--out metrics.json]
    torchrun --nproc_per_node 8 tools/test_mmdet.py CONFIG CHECKPOINT --launcher pytorch

The flags and the Runner setup are shared by every OpenMMLab tool of this repository:
``micronet_backbones.openmmlab.cli``.
"""

from __future__ import annotations

from micronet_backbones.openmmlab.cli import test_main


def main(argv: list[str] | None = None) -> dict:
    return test_main(
        argv,
        default_scope="mmdet",
        imports=["micronet_backbones.mmdetection"],
        description="Evaluate a detector (MMDetection)",
    )


if __name__ == "__main__":
    main()
