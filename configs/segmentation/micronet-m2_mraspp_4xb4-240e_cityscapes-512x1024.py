# MicroNet-M2 + MR-ASPP head, Cityscapes: the M3 config's recipe and head (see it for what
# follows the paper and what follows MMSegmentation's LR-ASPP configs), M2's backbone.
#
#   python tools/train_seg.py configs/segmentation/micronet-m2_mraspp_4xb4-240e_cityscapes-512x1024.py
_base_ = ["./micronet-m3_mraspp_4xb4-240e_cityscapes-512x1024.py"]

model = dict(
    backbone=dict(
        arch="m2",
        init_cfg=dict(type="Pretrained", checkpoint="checkpoints/micronet-m2.pth"),
    ),
    decode_head=dict(in_channels=(24, 768)),  # MicroNet-M2 at strides 8 and 16
)
