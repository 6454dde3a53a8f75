# MicroNet-M3 + Micro-Block head on the generated stick-figure set (micronet_backbones
# .synthetic.figures), 128x96 input: the quick-start and the end-to-end test. The model is the COCO M3
# config's (same backbone, same head widths, same loss and flip test); the input size, the
# data, the schedule, the batch size and the augmentation change, and there are no ImageNet
# weights (nothing is downloaded).
#
# Tuned to learn within a few minutes on 2 CPU cores from random initialisation: batch 8
# (more steps per epoch), Adam at 3e-3, 12 epochs with x0.1 for the last two, Gaussian
# targets of sigma 2 on the 32x24 heatmaps, and horizontal flip as the only augmentation (the
# figures are already drawn at varied poses, positions and scales; the COCO configs keep
# MMPose's full augmentation). Figures of this config: tests/pose/test_pose_learns.py.
#
#   python tools/quickstart_pose.py           # generates the data, trains, evaluates, draws
#   python tools/train_pose.py configs/pose/micronet-m3_synthetic-128x96.py \
#       --cfg-options data_root=...           # (data_root is only read at config parse time;
#                                             #  pass the dataset keys, as the quick-start does)
_base_ = ["./micronet-m3_8xb32-250e_coco-256x192.py"]

data_root = "output/quickstart/pose/data/"

# a short schedule: Adam 3e-3, warm-up over 50 iterations, x0.1 for the last two epochs
train_cfg = dict(max_epochs=12, val_interval=12)
optim_wrapper = dict(optimizer=dict(type="Adam", lr=3e-3))
param_scheduler = [
    dict(type="LinearLR", begin=0, end=50, start_factor=0.01, by_epoch=False),
    dict(type="MultiStepLR", begin=0, end=12, milestones=[10, 11], gamma=0.1, by_epoch=True),
]
auto_scale_lr = dict(base_batch_size=8)
default_hooks = dict(
    logger=dict(type="LoggerHook", interval=10),
    checkpoint=dict(type="CheckpointHook", interval=-1, save_last=True, save_best=None),
)
randomness = dict(seed=0)

codec = dict(type="MSRAHeatmap", input_size=(96, 128), heatmap_size=(24, 32), sigma=2.0)

model = dict(
    backbone=dict(init_cfg=None),  # no ImageNet weights here
    head=dict(decoder=codec),
)

train_pipeline = [
    dict(type="LoadImage"),
    dict(type="GetBBoxCenterScale"),
    dict(type="RandomFlip", direction="horizontal"),
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

train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type="DefaultSampler", shuffle=True),
    dataset=dict(
        type="CocoDataset",
        data_root=data_root,
        data_mode="topdown",
        ann_file="annotations/person_keypoints_train.json",
        data_prefix=dict(img="images/train/"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type="DefaultSampler", shuffle=False, round_up=False),
    dataset=dict(
        type="CocoDataset",
        data_root=data_root,
        data_mode="topdown",
        ann_file="annotations/person_keypoints_val.json",
        bbox_file=None,
        data_prefix=dict(img="images/val/"),
        test_mode=True,
        pipeline=val_pipeline,
    ),
)
test_dataloader = val_dataloader

val_evaluator = dict(
    type="CocoMetric", ann_file=data_root + "annotations/person_keypoints_val.json"
)
test_evaluator = val_evaluator
