"""Train an MMDetection detector with MMEngine's Runner (MMDetection's usual flags).

    python tools/train_mmdet.py configs/mmdet/faster-rcnn_micronet-m3_fpn_ms-3x_coco.py
    python tools/train_mmdet.py CONFIG --work-dir work_dirs/frcnn --resume          # latest
    torchrun --nproc_per_node 8 tools/train_mmdet.py CONFIG --launcher pytorch

The flags and the Runner setup are shared by every OpenMMLab tool of this repository:
``micronet_backbones.openmmlab.cli``.
"""

from __future__ import annotations

from micronet_backbones.openmmlab.cli import train_main


def main(argv: list[str] | None = None):
    return train_main(
        argv,
        default_scope="mmdet",
        imports=["micronet_backbones.mmdetection"],
        description="Train a detector (MMDetection)",
    )


if __name__ == "__main__":
    main()
