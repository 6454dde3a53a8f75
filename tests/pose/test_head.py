"""``MicroBlockHead``: layout of the paper, spatial-attention Shift-Max, loss, predict, flip test."""

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData, PixelData
from mmpose.registry import MODELS
from mmpose.structures import PoseDataSample

from micronet_backbones import MicroBlockC
from micronet_backbones.ops import DynamicShiftMax

CODEC = dict(type="MSRAHeatmap", input_size=(192, 256), heatmap_size=(48, 64), sigma=2)
HEAD = dict(
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
        )
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
    decoder=CODEC,
)
FLIP_INDICES = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]


def build(**changes):
    return MODELS.build({**HEAD, **changes})


def test_layout_upsamples_twice_to_one_heatmap_per_keypoint():
    head = build().eval()
    assert len(head.stride8) == 1 and len(head.stride4) == 2
    assert all(isinstance(block, MicroBlockC) for block in [*head.stride8, *head.stride4])
    assert head.stride8[0].out_channels == 64 and head.stride4[1].spec.hidden_channels == 384
    with torch.no_grad():
        heatmaps = head((torch.randn(2, 864, 16, 12),))
    assert heatmaps.shape == (2, 17, 64, 48)
    with pytest.raises(ValueError, match=r"\(N, 864, h, w\)"):
        head((torch.randn(2, 768, 16, 12),))


def test_every_shift_max_has_per_position_spatial_attention():
    head = build().eval()
    shift_maxes = [m for m in head.modules() if isinstance(m, DynamicShiftMax)]
    assert len(shift_maxes) == 9  # three per block: after expand, depthwise and project
    assert all(m.spatial is not None for m in shift_maxes)
    # The coefficients vary per position: against the same Shift-Max without spatial attention
    # the output is rescaled by pi(h, w), the same factor for every channel at a position.
    act = head.stride4[1].act_depthwise
    torch.nn.init.normal_(act.spatial.weight, 0.0, 1.0)
    same = DynamicShiftMax(
        act.channels,
        act.groups,
        init=act.coefficient_init.view(2, 2).tolist(),
        squeeze_channels=act.fc1.out_features,
    )
    same.load_state_dict({k: v for k, v in act.state_dict().items() if not k.startswith("spatial")})
    x = torch.randn(1, 384, 8, 6)
    with torch.no_grad():
        pi = act.spatial_weights(x)
        torch.testing.assert_close(act(x), pi * same(x))
    assert float(pi.std()) > 1e-3
    plain = build(spatial_attention=False)
    assert all(m.spatial is None for m in plain.modules() if isinstance(m, DynamicShiftMax))


def test_head_widths_are_config_data_and_bad_rows_are_rejected():
    wide = build(
        stride4_blocks=[
            dict(
                out_channels=32,
                expansion=(1, 4),
                expand_groups=(4, 4),
                project_groups=(4, 4),
                reduction=4,
                kernel_size=3,
            )
        ]
    )
    assert len(wide.stride4) == 1 and wide.final_layer.in_channels == 32
    assert wide.stride4[0].spec.kernel_size == 3
    with pytest.raises(ValueError, match="head block 0"):
        build(stride8_blocks=[dict(out_channels=64, widht=3)])
    with pytest.raises(ValueError, match="'stride' is set by the head"):
        build(
            stride8_blocks=[
                dict(
                    out_channels=64,
                    expansion=(1, 1),
                    expand_groups=(12, 12),
                    project_groups=(8, 8),
                    reduction=8,
                    stride=2,
                )
            ]
        )
    with pytest.raises(ValueError, match="at least one block"):
        build(stride4_blocks=[])


def _samples(n: int, heatmap_hw=(64, 48)) -> list:
    samples = []
    rng = np.random.default_rng(0)
    for _ in range(n):
        sample = PoseDataSample(
            metainfo=dict(
                flip_indices=FLIP_INDICES,
                input_size=(192, 256),
                input_center=np.array([96.0, 128.0]),
                input_scale=np.array([192.0, 256.0]),
            )
        )
        sample.gt_fields = PixelData(heatmaps=torch.rand(17, *heatmap_hw))
        sample.gt_instance_labels = InstanceData(
            keypoint_weights=torch.tensor(rng.integers(0, 2, size=(1, 17)), dtype=torch.float32)
        )
        samples.append(sample)
    return samples


def test_loss_uses_target_weights_and_trains():
    head = build().train()
    feats = (torch.randn(2, 864, 16, 12, requires_grad=True),)
    samples = _samples(2)
    losses = head.loss(feats, samples)
    assert set(losses) == {"loss_kpt", "acc_pose"}
    loss = losses["loss_kpt"]
    assert loss.ndim == 0 and float(loss) > 0
    loss.backward()
    assert head.final_layer.weight.grad is not None
    assert head.stride8[0].act_expand.spatial.weight.grad is not None
    # zero target weights for every keypoint: nothing to learn
    for sample in samples:
        sample.gt_instance_labels.keypoint_weights.zero_()
    assert float(head.loss(feats, samples)["loss_kpt"]) == 0.0


def test_predict_decodes_17_keypoints_and_flip_test_averages_flipped_heatmaps():
    head = build().eval()
    feats = (torch.randn(2, 864, 16, 12),)
    with torch.no_grad():
        preds = head.predict(feats, _samples(2), test_cfg=dict(flip_test=False))
    assert len(preds) == 2
    assert preds[0].keypoints.shape == (1, 17, 2) and preds[0].keypoint_scores.shape == (1, 17)

    with torch.no_grad():
        flipped_feats = (torch.flip(feats[0], dims=[3]),)
        _, fields = head.predict(
            [feats, flipped_feats],
            _samples(2),
            test_cfg=dict(
                flip_test=True, flip_mode="heatmap", shift_heatmap=False, output_heatmaps=True
            ),
        )
        plain = head(feats)
        mirrored = torch.flip(head(flipped_feats), dims=[3])[:, FLIP_INDICES]
    torch.testing.assert_close(fields[0].heatmaps, ((plain + mirrored) / 2)[0])
    with pytest.raises(ValueError, match="flip test"):
        head.predict(feats, _samples(2), test_cfg=dict(flip_test=True))
