"""Train a semantic segmentation model with MMEngine's Runner (MMSegmentation's usual flags).

    python tools/train_seg.py configs/segmentation/micronet-m3_mraspp_4xb4-240e_cityscapes-512x1024.py
    python tools/train_seg.py CONFIG --work-dir work_dirs/m3 --resume             # latest
    python tools/train_seg.py CONFIG --resume work_dirs/m3/iter_4464.pth
    python tools/train_seg.py CONFIG --amp --cfg-options train_dataloader.batch_size=8

Several GPUs or nodes go through MMEngine's launchers, e.g.

    torchrun --nproc_per_node 4 tools/train_seg.py CONFIG --launcher pytorch
    srun -p PARTITION -N 1 --ntasks-per-node 4 --gres gpu:4 \
        python tools/train_seg.py CONFIG --launcher slurm

The flags and the Runner setup are shared by every OpenMMLab tool of this repository:
``micronet_backbones.openmmlab.cli``.
"""

from __future__ import annotations

from micronet_backbones.openmmlab.cli import train_main


def main(argv: list[str] | None = None):
    return train_main(
        argv,
        default_scope="mmseg",
        imports=["micronet_backbones.segmentation"],
        description="Train a semantic segmentation model (MMSegmentation)",
    )


if __name__ == "__main__":
    main()
