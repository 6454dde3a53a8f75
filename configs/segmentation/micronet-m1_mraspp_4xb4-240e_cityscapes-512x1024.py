# MicroNet-M1 + MR-ASPP head, Cityscapes: the M3 config's recipe and head (see it for what
# follows the paper and what follows MMSegmentation's LR-ASPP configs), M1's backbone.
#
#   python tools/train_seg.py configs/segmentation/micronet-m1_mraspp_4xb4-240e_cityscapes-512x1024.py
_base_ = ["./micronet-m3_mraspp_4xb4-240e_cityscapes-512x1024.py"]

model = dict(
    backbone=dict(
        arch="m1",
        init_cfg=dict(type="Pretrained", checkpoint="checkpoints/micronet-m1.pth"),
    ),
    decode_head=dict(in_channels=(16, 576)),  # MicroNet-M1 at strides 8 and 16
)
