"""Train a top-down pose model with MMEngine's Runner (MMPose's usual flags).

    python tools/train_pose.py configs/pose/micronet-m3_8xb32-250e_coco-256x192.py
    python tools/train_pose.py CONFIG --work-dir work_dirs/m3 --resume             # latest
    python tools/train_pose.py CONFIG --resume work_dirs/m3/epoch_100.pth
    python tools/train_pose.py CONFIG --cfg-options train_dataloader.batch_size=16

Several GPUs or nodes go through MMEngine's launchers, e.g.

    torchrun --nproc_per_node 8 tools/train_pose.py CONFIG --launcher pytorch
    srun -p PARTITION -N 2 --ntasks-per-node 8 --gres gpu:8 \
        python tools/train_pose.py CONFIG --launcher slurm

The flags and the Runner setup are shared by every OpenMMLab tool of this repository:
``micronet_backbones.openmmlab.cli``.
"""

from __future__ import annotations

from micronet_backbones.openmmlab.cli import train_main


def main(argv: list[str] | None = None):
    return train_main(
        argv,
        default_scope="mmpose",
        imports=["micronet_backbones.pose"],
        description="Train a pose model (MMPose)",
    )


if __name__ == "__main__":
    main()
