# MicroNet-M3 + MR-ASPP on the generated scenes (micronet_backbones.synthetic
# .segmentation_scenes: four shape classes + background, 128x128): the quick-start and the
# end-to-end test. The model is the Cityscapes M3 config's (same backbone, head, loss); the
# data, the number of classes, the schedule, the batch size and the augmentation change, and
# there are no ImageNet weights (nothing is downloaded).
#
# Tuned to learn within a few minutes on 2 CPU cores from random initialisation (figures of
# this config: tests/segmentation/test_segmentation_learns.py).
#
#   python tools/quickstart_segmentation.py     # generates the data, trains, evaluates, draws
#   python tools/train_seg.py configs/segmentation/micronet-m3_mraspp_synthetic-128x128.py \
#       --cfg-options train_dataloader.dataset.data_root=DATA test_dataloader.dataset.data_root=DATA
_base_ = ["./micronet-m3_mraspp_4xb4-240e_cityscapes-512x1024.py"]

data_root = "output/quickstart/segmentation/data/"
crop_size = (128, 128)
iters = 200
metainfo = dict(
    classes=("background", "disc", "square", "triangle", "star"),
    palette=[[0, 0, 0], [220, 60, 60], [60, 200, 80], [70, 110, 230], [235, 200, 40]],
)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None),  # no ImageNet weights here
    decode_head=dict(num_classes=5),
)
sync_bn = None

train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
test_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    dict(type="PackSegInputs"),
]
dataset = dict(
    type="BaseSegDataset",
    data_root=data_root,
    metainfo=metainfo,
    img_suffix=".png",
    seg_map_suffix=".png",
    reduce_zero_label=False,
)
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path="images/train", seg_map_path="labels/train"),
        pipeline=train_pipeline,
    ),
)
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        **dataset,
        data_prefix=dict(img_path="images/val", seg_map_path="labels/val"),
        pipeline=test_pipeline,
    ),
)
test_dataloader = val_dataloader

optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    optimizer=dict(type="AdamW", lr=3e-3, weight_decay=1e-4),
)
param_scheduler = [
    dict(type="LinearLR", start_factor=0.01, begin=0, end=30, by_epoch=False),
    dict(type="CosineAnnealingLR", eta_min=1e-5, T_max=iters, begin=0, end=iters, by_epoch=False),
]
auto_scale_lr = dict(enable=False, base_batch_size=8)
train_cfg = dict(max_iters=iters, val_interval=iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=iters, save_best=None, max_keep_ckpts=1),
    visualization=dict(type="SegVisualizationHook", draw=False),
)
randomness = dict(seed=0)
