"""Model names -> specs, and ``create_model``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Union

from .checkpoint import load_pretrained
from .model import MicroNet
from .specs import RELEASED, MicroNetSpec

__all__ = ["canonical_name", "create_model", "get_spec", "list_models"]

_SPECS: dict[str, MicroNetSpec] = {spec.name: spec for spec in RELEASED}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`: ["micronet_m0", ..., "micronet_m3"]."""
    return sorted(_SPECS)


def canonical_name(name: str) -> str:
    """The registered name for ``name``: "m3", "M3" and "micronet_m3" all give "micronet_m3".

    The one place where arch spellings are resolved: the core, the adapters and the tools call
    it, so every entry point accepts both the short ("m3") and the full ("micronet_m3") form.

    Raises:
        ValueError: ``name`` is no MicroNet; the message lists the valid names.
    """
    if isinstance(name, str):
        key = name.strip().lower()
        key = key if key.startswith("micronet_") else f"micronet_{key}"
        if key in _SPECS:
            return key
    valid = ", ".join(list_models())
    short = ", ".join(n.removeprefix("micronet_") for n in list_models())
    raise ValueError(f"unknown model {name!r}; valid names: {valid} (or {short})")


def get_spec(name: str) -> MicroNetSpec:
    """The :class:`MicroNetSpec` registered as ``name`` (either spelling, see
    :func:`canonical_name`); ``ValueError`` listing valid names."""
    return _SPECS[canonical_name(name)]


def create_model(
    name: str,
    *,
    pretrained: Union[bool, str, os.PathLike, None] = None,
    num_classes: int = 1000,
    features_only: bool = False,
    out_strides: Sequence[int] | None = None,
    output_stride: int = 32,
) -> MicroNet:
    """Build a MicroNet by name, optionally with weights.

    Args:
        name: one of :func:`list_models`, either spelling ("micronet_m3" or "m3", see
            :func:`canonical_name`).
        pretrained: ``None`` / ``False`` (the authors' random init), ``True`` (the authors'
            ImageNet checkpoint for the arch, downloaded once into torch.hub's cache), a path, or
            a URL (``http(s)://``, ``file://``). Authors' and our checkpoint formats are both read
            (see :func:`micronet_backbones.checkpoint.load_pretrained`); any mismatch raises
            :class:`~micronet_backbones.checkpoint.CheckpointError` and loads nothing. A
            ``features_only`` model skips the checkpoint's classifier; a classifier model
            loads it, so its ``num_classes`` must match the checkpoint's.
        num_classes: classifier outputs.
        features_only: return a backbone whose ``forward`` gives a list of feature maps
            (``model.feature_info`` describes them).
        out_strides: strides to tap when ``features_only`` (default: all of them).
        output_stride: 32, 16 or 8; blocks that would go below it run at stride 1.

    Returns:
        a :class:`MicroNet` in training mode.
    """
    spec = get_spec(name)
    model = MicroNet(
        spec,
        num_classes=num_classes,
        features_only=features_only,
        out_strides=out_strides,
        output_stride=output_stride,
    )
    if pretrained is True:
        if not spec.url:
            raise ValueError(f"no released checkpoint is known for {name}")
        pretrained = spec.url
    if pretrained not in (None, False):
        load_pretrained(model, pretrained)
    return model
