# MicroNet-M2 + Micro-Block head, top-down heatmaps, COCO keypoints at 256x192.
#
# Paper (MicroNet, Li et al., ICCV 2021): 1.8M params, 116.8M MAdds, AP 54.9 on COCO val2017.
# Everything but the model is the M3 config's (same recipe, data, augmentation, evaluation).
_base_ = ["./micronet-m3_8xb32-250e_coco-256x192.py"]

model = dict(
    backbone=dict(
        arch="m2",
        init_cfg=dict(type="Pretrained", checkpoint="checkpoints/micronet-m2.pth"),
    ),
    # Same head layout as M3 on M2's 768-channel stride-16 feature; 24 groups (instead of 12)
    # in the stride-8 block's first 1x1 conv fit M2's smaller MAdds budget.
    head=dict(
        in_channels=768,
        stride8_blocks=[
            dict(
                out_channels=64,
                expansion=(1, 1),
                expand_groups=(24, 24),
                project_groups=(8, 8),
                reduction=8,
            ),
        ],
    ),
)
