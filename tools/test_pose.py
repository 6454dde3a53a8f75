"""Evaluate a trained top-down pose model with MMEngine's Runner (MMPose's usual flags).

    python tools/test_pose.py CONFIG CHECKPOINT [--out metrics.json]
    python tools/test_pose.py CONFIG CHECKPOINT --cfg-options \
        test_dataloader.dataset.bbox_file=data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json
    torchrun --nproc_per_node 8 tools/test_pose.py CONFIG CHECKPOINT --launcher pytorch

The flags and the Runner setup are shared by every OpenMMLab tool of this repository:
``micronet_backbones.openmmlab.cli``.
"""

from __future__ import annotations

from micronet_backbones.openmmlab.cli import test_main


def main(argv: list[str] | None = None) -> dict:
    return test_main(
        argv,
        default_scope="mmpose",
        imports=["micronet_backbones.pose"],
        description="Evaluate a pose model (MMPose)",
    )


if __name__ == "__main__":
    main()
