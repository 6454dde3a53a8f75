# MicroNet-M3 (stride-32 blocks at stride 16) + MR-ASPP head, Cityscapes semantic segmentation.
#
# Paper (MicroNet, Li et al., earlier arXiv version): 69.1 mIoU on Cityscapes val at 2.52B
# MAdds (1024x2048) for its MicroNet, vs. 68.4 at 2.90B for MobileNetV3 + LR-ASPP. Those
# MicroNets are a different family from the released M0-M3 used here.
# `python tools/flops.py --segmentation` prints what this config builds (params and fvcore
# MAdds of backbone + head at 1024x2048).
#
# The paper's recipe: random init (here: the authors' ImageNet checkpoint through init_cfg;
# set model.backbone.init_cfg=None for the paper's random init), 240 epochs, SGD momentum 0.9,
# lr 0.2 with cosine decay to 1e-4, weight decay 4e-5.
# Not stated in the paper, chosen as MMSegmentation's LR-ASPP MobileNetV3 configs
# (configs/mobilenet_v3/mobilenet-v3-d8_lraspp_4xb4-320k_cityscapes-512x1024.py) do:
# 4 GPUs x 4 images, 512x1024 crops after random resize (ratio 0.5-2.0) with flip and
# photometric distortion, single-scale 1024x2048 whole-image evaluation with IoUMetric (mIoU),
# cross-entropy loss, head width 128, dropout 0.1, align_corners False, SyncBN (here the BNs
# are the core's, converted by `sync_bn`), ImageNet mean / std.
# 240 epochs of the 2,975 fine train images at batch 16 are 240 x 186 = 44,640 iterations.
#
#   python tools/train_seg.py configs/segmentation/micronet-m3_mraspp_4xb4-240e_cityscapes-512x1024.py
#   torchrun --nproc_per_node 4 tools/train_seg.py CONFIG --launcher pytorch
#   python tools/test_seg.py CONFIG work_dirs/.../iter_44640.pth
#
# Data: MMSegmentation's Cityscapes layout under data/cityscapes (leftImg8bit, gtFine with
# *_labelTrainIds.png from MMSegmentation's tools/dataset_converters/cityscapes.py).
# ImageNet weights: the authors' release (http://www.svcl.ucsd.edu/projects/micronet/assets/
# micronet-m3.pth) saved as checkpoints/micronet-m3.pth; the classifier keys are skipped, any
# other mismatch is an error.
_base_ = ["mmseg::_base_/datasets/cityscapes.py", "mmseg::_base_/default_runtime.py"]

custom_imports = dict(imports=["micronet_backbones.segmentation"], allow_failed_imports=False)

crop_size = (512, 1024)
iters = 240 * 186  # 240 epochs of 2,975 images at batch 16 (4 GPUs x 4)

model = dict(
    type="EncoderDecoder",
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size,
    ),
    backbone=dict(
        type="MicroNet",
        arch="m3",
        out_strides=(8, 16),  # the two features MR-ASPP reads
        output_stride=16,  # the paper's stride adjustment: stride-32 blocks run at stride 16
        init_cfg=dict(type="Pretrained", checkpoint="checkpoints/micronet-m3.pth"),
    ),
    decode_head=dict(
        type="MRASPPHead",
        in_channels=(24, 864),  # MicroNet-M3 at strides 8 and 16
        in_index=(0, 1),
        channels=128,
        input_transform="multiple_select",
        shift_max=False,  # True: Dynamic Shift-Max with spatial attention, as the pose head
        dropout_ratio=0.1,
        num_classes=19,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)
sync_bn = "torch"  # BatchNorm -> SyncBatchNorm when training on several GPUs

train_dataloader = dict(batch_size=4, num_workers=4)
val_dataloader = dict(batch_size=1, num_workers=4)
test_dataloader = val_dataloader

optim_wrapper = dict(
    type="OptimWrapper",
    optimizer=dict(type="SGD", lr=0.2, momentum=0.9, weight_decay=4e-5),
    clip_grad=None,
)
param_scheduler = [
    dict(type="CosineAnnealingLR", eta_min=1e-4, T_max=iters, begin=0, end=iters, by_epoch=False),
]
auto_scale_lr = dict(enable=False, base_batch_size=16)

train_cfg = dict(type="IterBasedTrainLoop", max_iters=iters, val_interval=iters // 10)
val_cfg = dict(type="ValLoop")
test_cfg = dict(type="TestLoop")
default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(
        type="CheckpointHook",
        by_epoch=False,
        interval=iters // 10,
        save_best="mIoU",
        rule="greater",
    ),
    sampler_seed=dict(type="DistSamplerSeedHook"),
    visualization=dict(type="SegVisualizationHook"),
)
