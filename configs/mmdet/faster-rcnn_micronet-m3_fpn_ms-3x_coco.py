# Faster R-CNN with MicroNet-M3 + MMDetection's FPN (P2-P6) on COCO 2017, 3x schedule.
#
# MMDetection's faster-rcnn_r50_fpn_ms-3x_coco.py with MicroNet-M3 in place of ResNet-50:
# multi-scale training (shorter side 640-800), 36 epochs (12 epochs of a 3x repeated dataset,
# lr x 0.1 at 27 and 33), SGD lr 0.02 for a total batch of 16 (8 GPUs x 2). The paper's 3x
# schedule (36 epochs from ImageNet weights): Faster R-CNN M3 26.2 mAP, M2 22.7 mAP on COCO val.
#
#   python tools/train_mmdet.py configs/mmdet/faster-rcnn_micronet-m3_fpn_ms-3x_coco.py
#   torchrun --nproc_per_node 8 tools/train_mmdet.py CONFIG --launcher pytorch
#
# Data: MMDetection's usual layout, data/coco/{annotations,train2017,val2017}.
# ImageNet weights: the authors' release (http://www.svcl.ucsd.edu/projects/micronet/assets/
# micronet-m3.pth) saved as checkpoints/micronet-m3.pth; the classifier keys are skipped, any
# other mismatch is an error.
_base_ = ["mmdet::faster_rcnn/faster-rcnn_r50_fpn_ms-3x_coco.py"]

custom_imports = dict(imports=["micronet_backbones.mmdetection"], allow_failed_imports=False)

model = dict(
    backbone=dict(
        _delete_=True,
        type="MicroNet",
        arch="m3",
        out_strides=(4, 8, 16, 32),  # C2-C5, as ResNet's out_indices (0, 1, 2, 3)
        output_stride=32,  # the ImageNet network: no stride adjustment for detection
        # MMDetection's fine-tuning convention (ResNet: frozen_stages=1, norm_eval=True), as
        # Detectron2's FREEZE_AT=2 + FrozenBN in configs/detection: the stem and the stride-4
        # blocks are frozen, every BatchNorm keeps its ImageNet statistics (2 images per GPU).
        frozen_stages=1,
        norm_eval=True,
        init_cfg=dict(type="Pretrained", checkpoint="checkpoints/micronet-m3.pth"),
    ),
    # MicroNet-M3's channels at strides 4, 8, 16 and 32; P6 max-pooled from P5.
    neck=dict(in_channels=[16, 24, 80, 864], num_outs=5),
)
