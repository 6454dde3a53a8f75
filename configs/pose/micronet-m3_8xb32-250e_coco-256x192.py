# MicroNet-M3 + Micro-Block head, top-down heatmaps, COCO keypoints at 256x192.
#
# Paper (MicroNet, Li et al., ICCV 2021): 2.2M params, 163.2M MAdds, AP 58.7 on COCO val2017.
# `python tools/flops.py --pose` prints what this config builds (params and fvcore MAdds of
# backbone + head at 256x192).
#
# Recipe of the paper: Adam, lr 1e-3, 250 epochs, lr x 0.1 at epochs 210 and 240; its
# augmentation: random rotation in [-45, 45] degrees, random scale in [0.65, 1.35], flipping
# and half-body (no random shift; RandomBBoxTransform's defaults would shift, scale in
# [0.5, 1.5] and rotate in [-80, 80]). Total batch 256 (8 GPUs x 32).
#
#   python tools/train_pose.py configs/pose/micronet-m3_8xb32-250e_coco-256x192.py
#   torchrun --nproc_per_node 8 tools/train_pose.py CONFIG --launcher pytorch
#
# Data: MMPose's usual layout, data/coco/{annotations,train2017,val2017}. Validation uses the
# ground-truth person boxes; for the detected boxes of the usual protocol add
#   --cfg-options val_dataloader.dataset.bbox_file=data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json \
#                 test_dataloader.dataset.bbox_file=data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json
#
# ImageNet weights: the authors' release (http://www.svcl.ucsd.edu/projects/micronet/assets/
# micronet-m3.pth) saved as checkpoints/micronet-m3.pth; the classifier keys are skipped, any
# other mismatch is an error.
_base_ = ["./_base_/default_runtime.py"]

custom_imports = dict(imports=["micronet_backbones.pose"], allow_failed_imports=False)

# runtime
train_cfg = dict(max_epochs=250, val_interval=10)

# optimizer
optim_wrapper = dict(optimizer=dict(type="Adam", lr=1e-3))

# learning policy: linear warm-up over the first 500 iterations, then steps at 210 and 240
param_scheduler = [
    dict(type="LinearLR", begin=0, end=500, start_factor=0.001, by_epoch=False),
    dict(type="MultiStepLR", begin=0, end=250, milestones=[210, 240], gamma=0.1, by_epoch=True),
]

# automatically scale the learning rate with the actual batch size (--auto-scale-lr)
auto_scale_lr = dict(base_batch_size=256)

# hooks
default_hooks = dict(checkpoint=dict(save_best="coco/AP", rule="greater"))

# codec settings
codec = dict(type="MSRAHeatmap", input_size=(192, 256), heatmap_size=(48, 64), sigma=2)

# model settings
model = dict(
    type="TopdownPoseEstimator",
    data_preprocessor=dict(
        type="PoseDataPreprocessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
    ),
    backbone=dict(
        type="MicroNet",
        arch="m3",
        out_strides=(16,),
        output_stride=16,  # the paper's stride adjustment: stride-32 blocks run at stride 16
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(type="Pretrained", checkpoint="checkpoints/micronet-m3.pth"),
    ),
    # Head widths (see pose/micro_block_head.py and README "Pose"): 64 channels at strides 8
    # and 4; the stride-8 block keeps the backbone's 864 channels inside (expansion 1, 12
    # groups in its first 1x1 conv) and squeezes to 64; the two stride-4 blocks expand x2 and
    # x6. Hyper-function squeeze ratios 8 (stride 8) and 4 (stride 4).
    head=dict(
        type="MicroBlockHead",
        in_channels=864,
        out_channels=17,
        stride8_blocks=[
            dict(
                out_channels=64,
                expansion=(1, 1),
                expand_groups=(12, 12),
                project_groups=(8, 8),
                reduction=8,
            ),
        ],
        stride4_blocks=[
            dict(
                out_channels=64,
                expansion=(1, 2),
                expand_groups=(8, 8),
                project_groups=(8, 8),
                reduction=4,
            ),
            dict(
                out_channels=64,
                expansion=(1, 6),
                expand_groups=(8, 8),
                project_groups=(8, 8),
                reduction=4,
            ),
        ],
        loss=dict(type="KeypointMSELoss", use_target_weight=True),
        decoder=codec,
    ),
    test_cfg=dict(flip_test=True, flip_mode="heatmap", shift_heatmap=True),
)

# base dataset settings
dataset_type = "CocoDataset"
data_mode = "topdown"
data_root = "data/coco/"

# pipelines
train_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale"),
    dict(type="RandomFlip", direction="horizontal"),
    dict(type="RandomHalfBody"),
    # the paper's scale [0.65, 1.35] and rotation [-45, 45] degrees (a normal distribution
    # truncated to those ranges; rotation on 60% of the boxes, MMPose's and HRNet's rate), no shift
    dict(
        type="RandomBBoxTransform",
        shift_prob=0.0,
        scale_factor=(0.65, 1.35),
        scale_prob=1.0,
        rotate_factor=45.0,
        rotate_prob=0.6,
    ),
    dict(type="TopdownAffine", input_size=codec["input_size"]),
    dict(type="GenerateTarget", encoder=codec),
    dict(type="PackPoseInputs"),
]
val_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale"),
    dict(type="TopdownAffine", input_size=codec["input_size"]),
    dict(type="PackPoseInputs"),
]

# data loaders
train_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file="annotations/person_keypoints_train2017.json",
        data_prefix=dict(img="train2017/"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file="annotations/person_keypoints_val2017.json",
        bbox_file=None,  # ground-truth boxes; see the header for detected boxes
        data_prefix=dict(img="val2017/"),
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader

# evaluators
val_evaluator = dict(
    type="CocoMetric", ann_file=data_root + "annotations/person_keypoints_val2017.json"
)
test_evaluator = val_evaluator
