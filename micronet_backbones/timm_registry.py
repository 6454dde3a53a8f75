"""MicroNet-M0 ... M3 in timm's model registry: ``timm.create_model("micronet_m3", ...)``.

``import micronet_backbones`` calls :func:`register_when_timm_loads`: when timm is installed,
the four names are registered in timm's registry as soon as timm is imported (at once if it
already is), each with a ``pretrained_cfg`` like timm's own models carry. timm itself is not
imported by ``import micronet_backbones`` (it takes seconds to import), and without timm
nothing happens. Then, as with any timm model::

    import micronet_backbones, timm

    model = timm.create_model("micronet_m3", pretrained=True)          # the authors' ImageNet weights
    model = timm.create_model("micronet_m3", pretrained=True,
                              pretrained_cfg_overlay=dict(file="micronet-m3.pth"))  # a local copy
    model = timm.create_model("micronet_m3", pretrained=True, num_classes=10)  # new classifier
    backbone = timm.create_model("micronet_m3", features_only=True, out_indices=(1, 2, 3))
    backbone.feature_info.channels(), backbone.feature_info.reduction()  # [24, 80, 864], [8, 16, 32]

Weights are read by the core's loader (:func:`micronet_backbones.load_pretrained`): the authors'
format or ours, and a checkpoint of another arch or with missing / unexpected / misshapen keys
raises :class:`~micronet_backbones.CheckpointError`, nothing half-loaded, as everywhere else.
The weight source is the resolved ``pretrained_cfg``'s ``state_dict``, ``file`` or ``url`` (in
that order). ``num_classes`` other than the checkpoint's 1000 keeps every pretrained weight
except the last classifier layer (``head.fc2`` and its ``head.bn2``), which starts as the
authors' initialisation, as timm resets a classifier.

A classifier is the core :class:`~micronet_backbones.MicroNet` itself (same modules, same
state_dict keys, ``pretrained_cfg`` / ``default_cfg`` attributes added). ``features_only``
gives :class:`TimmFeatures`: the core's ``features_only`` MicroNet under ``.micronet`` with
timm's ``FeatureInfo``. Its ``out_indices`` index the four taps at strides 4, 8, 16, 32 (with
``output_stride=16`` or 8 the strides are capped, as in the core) with timm's conventions
(default all, negative from the end, an int ``n`` for the last n).
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import warnings

import torch
from torch import nn

from .blocks import init_weights_
from .checkpoint import load_pretrained
from .model import MicroNet
from .registry import get_spec, list_models

__all__ = ["TimmFeatures", "register", "register_when_timm_loads"]

# Paper (Li et al., ICCV 2021, Table 2) ImageNet top-1 of the released checkpoints.
PAPER_TOP1 = {"micronet_m0": 46.6, "micronet_m1": 51.4, "micronet_m2": 59.4, "micronet_m3": 62.5}
PRETRAINED_TAG = "in1k"  # timm's tag for ImageNet-1k weights: "micronet_m3.in1k"

_registered = False


class TimmFeatures(nn.Module):
    """timm's ``features_only`` contract over the core's ``features_only`` MicroNet.

    ``forward``: (N, 3, H, W) -> list of (N, C_i, ceil(H / r_i), ceil(W / r_i)), one per
    ``out_indices`` entry; ``feature_info``: timm's ``FeatureInfo`` (``channels()``,
    ``reduction()``, ``module_name()``) over all four taps.
    """

    def __init__(self, micronet: MicroNet, feature_info) -> None:
        super().__init__()
        self.micronet = micronet
        self.feature_info = feature_info

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.micronet(x)


def _pretrained_cfg(name: str) -> dict:
    # The authors normalise as timm's defaults (micronet_backbones/imagenet/transforms.py).
    from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    return dict(
        url=get_spec(name).url,
        num_classes=1000,
        input_size=(3, 224, 224),
        pool_size=(7, 7),
        crop_pct=0.875,  # the authors' evaluation: resize 256, centre crop 224
        interpolation="bilinear",
        mean=IMAGENET_DEFAULT_MEAN,
        std=IMAGENET_DEFAULT_STD,
        first_conv="stem.conv_kx1",
        classifier="head.fc2",
        origin_url="https://github.com/liyunsheng13/micronet",
        paper_name="MicroNet: Improving Image Recognition with Extremely Low FLOPs",
        paper_ids="arXiv:2108.05894",
        description=(
            f"MicroNet-{name[-2:].upper()}, the authors' ImageNet-1k checkpoint "
            f"(paper top-1 {PAPER_TOP1[name]})"
        ),
    )


def _available_taps(name: str, output_stride: int) -> tuple:
    """The core's feature taps of ``name`` at ``output_stride`` (built on the meta device)."""
    with torch.device("meta"):
        return MicroNet(
            get_spec(name), features_only=True, output_stride=output_stride
        ).feature_info


def _reset_last_classifier_layer(model: MicroNet, num_classes: int) -> None:
    head = model.head
    head.fc2 = nn.Linear(head.fc2.in_features, num_classes)
    head.bn2 = nn.BatchNorm1d(num_classes)
    init_weights_(head.fc2)


def _create(
    name: str,
    pretrained: bool = False,
    *,
    pretrained_cfg=None,
    pretrained_cfg_overlay=None,
    cache_dir=None,
    num_classes: int | None = None,
    features_only: bool = False,
    out_indices=None,
    output_stride: int = 32,
    in_chans: int = 3,
    drop_rate: float | None = None,
    **unsupported,
) -> nn.Module:
    from timm.models import FeatureInfo, resolve_pretrained_cfg
    from timm.models._features import feature_take_indices

    if unsupported:
        raise TypeError(
            f"timm.create_model({name!r}): MicroNet takes no {', '.join(sorted(unsupported))}"
        )
    if in_chans != 3:
        raise ValueError(f"MicroNet takes 3-channel images, got in_chans={in_chans}")
    if cache_dir is not None:
        raise ValueError(
            "MicroNet's weights are cached by torch.hub: set TORCH_HOME, not cache_dir"
        )
    cfg = resolve_pretrained_cfg(name, pretrained_cfg, pretrained_cfg_overlay)
    spec = get_spec(name)
    feature_info = None
    if features_only:
        taps = _available_taps(name, output_stride)
        indices, _ = feature_take_indices(len(taps), out_indices)
        model = MicroNet(
            spec,
            features_only=True,
            out_strides=[taps[i].stride for i in indices],
            output_stride=output_stride,
        )
        info = [dict(num_chs=t.channels, reduction=t.stride, module=t.module) for t in taps]
        feature_info = FeatureInfo(info, tuple(indices))
    else:
        classes = cfg.num_classes if pretrained else (num_classes or cfg.num_classes)
        model = MicroNet(spec, num_classes=classes, output_stride=output_stride, dropout=drop_rate)
    if pretrained:
        source = cfg.state_dict or cfg.file or cfg.url
        if not source:
            raise ValueError(f"{name}: pretrained=True but its pretrained_cfg names no weights")
        load_pretrained(model, source)
        if not features_only and num_classes and num_classes != model.head.fc2.out_features:
            _reset_last_classifier_layer(model, num_classes)
    if features_only:
        model = TimmFeatures(model, feature_info)
    model.pretrained_cfg = model.default_cfg = cfg.to_dict()
    return model


def _entrypoint(name: str):
    def create(pretrained: bool = False, **kwargs) -> nn.Module:
        return _create(name, pretrained, **kwargs)

    create.__name__ = create.__qualname__ = name
    create.__module__ = __name__
    create.__doc__ = f"{name} for timm.create_model (see micronet_backbones.timm_registry)."
    return create


def register() -> None:
    """Register ``micronet_m0`` ... ``micronet_m3`` in timm's registry now (imports timm).
    Idempotent."""
    global _registered, default_cfgs
    if _registered:
        return
    from timm.models import generate_default_cfgs, register_model

    # timm's register_model reads the pretrained cfgs from the entrypoint module's default_cfgs.
    default_cfgs = generate_default_cfgs(
        {f"{name}.{PRETRAINED_TAG}": _pretrained_cfg(name) for name in list_models()}
    )
    for name in list_models():
        register_model(_entrypoint(name))
    _registered = True


class _RegisterAfterTimm(importlib.abc.MetaPathFinder):
    """One-shot import hook: lets timm import as usual, then calls :func:`register`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "timm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("timm")
        if spec is not None and spec.loader is not None:
            spec.loader = _LoaderThenRegister(spec.loader)
        return spec


class _LoaderThenRegister(importlib.abc.Loader):
    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        try:
            register()
        except Exception as error:  # a timm without the registry API we use: timm still works
            warnings.warn(
                f"MicroNet could not register in timm's registry: {error!r}", stacklevel=2
            )

    def __getattr__(self, name):
        return getattr(self.loader, name)


def register_when_timm_loads() -> None:
    """Register in timm's registry now if timm is imported, else when it is (if installed)."""
    if sys.modules.get("timm") is not None:
        register()
        return
    spec = importlib.util.find_spec("timm")
    installed = spec is not None and spec.origin is not None  # not a bare folder named timm
    if installed and not any(isinstance(f, _RegisterAfterTimm) for f in sys.meta_path):
        sys.meta_path.insert(0, _RegisterAfterTimm())


register_when_timm_loads()
