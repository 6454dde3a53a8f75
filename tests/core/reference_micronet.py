"""Test-only functional reference of the authors' MicroNet forward pass.

Written independently of ``micronet_backbones``: it runs straight on a state_dict with the
authors' key names (``features.{i}.layers.{j}...``), takes the architecture in the authors' own
row format (s, n, c, ks, c1, c2, g1, g2, c3, g3, g4, y1, y2, y3, r) and follows the order of
operations of their ``DYMicroBlock`` branches, including their index-gather channel shift. It is
first checked against the fixtures (the authors' outputs), then used as the oracle for inputs the
fixtures do not cover (other batch sizes, non-square sizes, sizes not divisible by 32).

The authors' constructor asserts ``input_size % 32 == 0`` for its *argument* (224 by default) but
their forward is fully convolutional: it runs on any H, W and this reference does the same, with
PyTorch's floor rule for every strided convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# The authors' rows (backbone/microconfig.py) and eval-script settings per arch.
ARCHS = {
    "m0": dict(
        stem_groups=(2, 2),
        init_a=(1.0, 1.0),
        init_b=(0.0, 0.0),
        rows=[
            (2, 1, 8, 3, 2, 2, 0, 4, 8, 2, 2, 2, 0, 1, 1),
            (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 2, 1, 1),
            (2, 1, 16, 5, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
            (1, 1, 32, 5, 1, 4, 4, 4, 32, 4, 4, 2, 2, 1, 1),
            (2, 1, 64, 5, 1, 4, 8, 8, 64, 8, 8, 2, 2, 1, 1),
            (1, 1, 96, 3, 1, 4, 8, 8, 96, 8, 8, 2, 2, 1, 2),
            (1, 1, 384, 3, 1, 4, 12, 12, 0, 0, 0, 2, 2, 1, 2),
        ],
    ),
    "m1": dict(
        stem_groups=(3, 2),
        init_a=(1.0, 1.0),
        init_b=(0.0, 0.0),
        rows=[
            (2, 1, 8, 3, 2, 2, 0, 6, 8, 2, 2, 2, 0, 1, 1),
            (2, 1, 16, 3, 2, 2, 0, 8, 16, 4, 4, 2, 2, 1, 1),
            (2, 1, 16, 5, 2, 2, 0, 16, 16, 4, 4, 2, 2, 1, 1),
            (1, 1, 32, 5, 1, 6, 4, 4, 32, 4, 4, 2, 2, 1, 1),
            (2, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 1),
            (1, 1, 96, 3, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
            (1, 1, 576, 3, 1, 6, 12, 12, 0, 0, 0, 2, 2, 1, 2),
        ],
    ),
    "m2": dict(
        stem_groups=(4, 2),
        init_a=(1.0, 1.0),
        init_b=(0.0, 0.0),
        rows=[
            (2, 1, 12, 3, 2, 2, 0, 8, 12, 4, 4, 2, 0, 1, 1),
            (2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 2, 2, 1, 1),
            (1, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 2, 2, 1, 1),
            (2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 2, 2, 1, 1),
            (1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 2, 2, 1, 2),
            (1, 1, 64, 5, 1, 6, 8, 8, 64, 8, 8, 2, 2, 1, 2),
            (2, 1, 96, 5, 1, 6, 8, 8, 96, 8, 8, 2, 2, 1, 2),
            (1, 1, 128, 3, 1, 6, 12, 12, 128, 8, 8, 2, 2, 1, 2),
            (1, 1, 768, 3, 1, 6, 16, 16, 0, 0, 0, 2, 2, 1, 2),
        ],
    ),
    "m3": dict(
        stem_groups=(4, 3),
        init_a=(1.0, 0.5),
        init_b=(0.0, 0.5),
        rows=[
            (2, 1, 16, 3, 2, 2, 0, 12, 16, 4, 4, 0, 2, 0, 1),
            (2, 1, 24, 3, 2, 2, 0, 16, 24, 4, 4, 0, 2, 0, 1),
            (1, 1, 24, 3, 2, 2, 0, 24, 24, 4, 4, 0, 2, 0, 1),
            (2, 1, 32, 5, 1, 6, 6, 6, 32, 4, 4, 0, 2, 0, 1),
            (1, 1, 32, 5, 1, 6, 8, 8, 32, 4, 4, 0, 2, 0, 2),
            (1, 1, 64, 5, 1, 6, 8, 8, 48, 8, 8, 0, 2, 0, 2),
            (1, 1, 80, 5, 1, 6, 8, 8, 80, 8, 8, 0, 2, 0, 2),
            (1, 1, 80, 5, 1, 6, 10, 10, 80, 8, 8, 0, 2, 0, 2),
            (2, 1, 120, 5, 1, 6, 10, 10, 120, 10, 10, 0, 2, 0, 2),
            (1, 1, 120, 5, 1, 6, 12, 12, 120, 10, 10, 0, 2, 0, 2),
            (1, 1, 144, 3, 1, 6, 12, 12, 144, 12, 12, 0, 2, 0, 2),
            (1, 1, 864, 3, 1, 6, 12, 12, 0, 0, 0, 0, 2, 0, 2),
        ],
    ),
}
REDUCTION = 8
ACT_MAX = 2.0
INIT_BLOCK3 = (1.0, 0.0)


def _bn(sd, p, x):
    return F.batch_norm(
        x,
        sd[p + ".running_mean"],
        sd[p + ".running_var"],
        sd[p + ".weight"],
        sd[p + ".bias"],
        False,
        0.0,
        1e-5,
    )


def _shuffle(x, groups):
    n, c, h, w = x.shape
    return x.reshape(n, groups, c // groups, h, w).permute(0, 2, 1, 3, 4).reshape(n, c, h, w)


def _spatial_pair(sd, p, x, k, stride, groups_first):
    """conv (k,1) stride (s,1) -> BN -> conv (1,k) stride (1,s), depthwise -> BN."""
    x = F.conv2d(x, sd[p + ".conv.0.weight"], None, (stride, 1), (k // 2, 0), 1, groups_first)
    x = _bn(sd, p + ".conv.1", x)
    x = F.conv2d(x, sd[p + ".conv.2.weight"], None, (1, stride), (0, k // 2), 1, x.shape[1])
    return _bn(sd, p + ".conv.3", x)


def _group_conv(sd, p, x, groups):
    return _bn(sd, p + ".conv.1", F.conv2d(x, sd[p + ".conv.0.weight"], None, 1, 0, 1, groups))


def _shift_index(channels, groups):
    """Authors' shift: channel (g, j) reads channel ((g + 1) % G, (j + 1) % (C / G))."""
    per = channels // groups
    return torch.tensor(
        [((g + 1) % groups) * per + (j + 1) % per for g in range(groups) for j in range(per)]
    )


def _dy_shift_max(sd, p, x, two_fusions, groups, init_a, init_b):
    n, c = x.shape[:2]
    y = F.adaptive_avg_pool2d(x, 1).view(n, c)
    y = F.relu(F.linear(y, sd[p + ".fc.0.weight"], sd[p + ".fc.0.bias"]))
    y = F.linear(y, sd[p + ".fc.2.weight"], sd[p + ".fc.2.bias"])
    y = F.relu6(y + 3) * (1 / 6)
    y = ((y - 0.5) * (ACT_MAX * 2)).view(n, -1, 1, 1)
    x2 = x[:, _shift_index(c, groups)]
    if two_fusions:
        a1, b1, a2, b2 = torch.split(y, c, dim=1)
        z1 = x * (a1 + init_a[0]) + x2 * (b1 + init_b[0])
        z2 = x * (a2 + init_a[1]) + x2 * (b2 + init_b[1])
        return torch.max(z1, z2)
    a1, b1 = torch.split(y, c, dim=1)
    return x * (a1 + init_a[0]) + x2 * (b1 + init_b[0])


def _act(sd, p, x, code, groups, arch, inner=True):
    """code 0: ReLU6 (inner) / nothing (outer); 1, 2: Dynamic Shift-Max with K = 1 or 2."""
    if code == 0:
        return F.relu6(x) if inner else x
    if inner:
        init_a, init_b = arch["init_a"], arch["init_b"]
        two = code == 2
    else:
        init_a, init_b = (INIT_BLOCK3[0], 0.0), (INIT_BLOCK3[1], 0.0)
        two = False
    return _dy_shift_max(sd, p, x, two, groups, init_a, init_b)


def _block(sd, p, x, row, inp, arch):
    s, _, oup, k, c1, c2, g1, g2, c3, g3, g4, y1, y2, y3, _ = row
    hidden = inp * c1 * c2
    L = p + ".layers."
    if g1 == 0:  # lite block
        out = _spatial_pair(sd, L + "0", x, k, s, inp)
        out = _act(sd, L + "1", out, y2, g2, arch)
        out = _shuffle(out, g2)
        if y2:
            out = _shuffle(out, hidden // 2)
        out = _group_conv(sd, L + "4", out, g3)
        out = _act(sd, L + "5", out, y3, g4, arch, inner=False)
        out = _shuffle(out, g4)
        if y3 and oup % 2 == 0:
            out = _shuffle(out, oup // 2)
    elif g3 == 0:  # last block: pointwise expansion only
        out = _group_conv(sd, L + "0", x, g1)
        out = _act(sd, L + "1", out, y3, g2, arch, inner=False)
    else:  # regular block
        out = _group_conv(sd, L + "0", x, g1)
        out = _act(sd, L + "1", out, y1, g2, arch)
        out = _shuffle(out, g2)
        out = _spatial_pair(sd, L + "3", out, k, s, hidden)
        out = _act(sd, L + "5", out, y2, hidden // g2 if g2 != 1 else 1, arch)
        if y1 and y2:
            out = _shuffle(out, hidden // 4)
        elif y1 or y2:
            out = _shuffle(out, hidden // 2)
        out = _group_conv(sd, L + "7", out, g3)
        out = _act(sd, L + "8", out, y3, g4, arch, inner=False)
        out = _shuffle(out, g4)
        if y3:
            out = _shuffle(out, oup // 2)
    if s == 1 and inp == oup:
        out = out + x
    return out


def _hswish(x):
    return x * (F.relu6(x + 3) / 6)


def reference_forward(state_dict, arch_name, x, output_stride=32):
    """Authors' MicroNet in eval mode: returns (logits, {stride: last block output}).

    ``output_stride=16`` edits the authors' rows the way the paper adapts MicroNet for pose:
    a stride-2 row that would take the network below stride 16 gets stride 1 (no row that
    changes has equal in/out widths, so their shortcut rule is unaffected).
    """
    sd = {k[7:] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    arch = ARCHS[arch_name]
    g1, g2 = arch["stem_groups"]
    y = _spatial_pair(sd, "features.0.stem.0", x, 3, 2, 1)
    y = F.relu6(_shuffle(y, g1))
    features, stride, inp = {}, 2, g1 * g2
    for index, row in enumerate(arch["rows"], start=1):
        if stride * row[0] > output_stride:
            assert inp != row[2]
            row = (1,) + tuple(row[1:])
        y = _block(sd, f"features.{index}", y, row, inp, arch)
        inp, stride = row[2], stride * row[0]
        features[stride] = y
    z = _hswish(F.adaptive_avg_pool2d(F.relu6(y), 1)).flatten(1)
    z = _hswish(
        _bn(
            sd,
            "classifier.0.linear.1",
            F.linear(z, sd["classifier.0.linear.0.weight"], sd["classifier.0.linear.0.bias"]),
        )
    )
    z = _hswish(
        _bn(
            sd,
            "classifier.2.linear.1",
            F.linear(z, sd["classifier.2.linear.0.weight"], sd["classifier.2.linear.0.bias"]),
        )
    )
    return z, features
