"""The authors' checkpoint key names mapped to ours.

The authors' released checkpoints (and state_dicts of their ``MicroNet``) name modules after
their ``nn.Sequential`` positions: ``features.0`` is the stem, ``features.{i + 1}`` block ``i``
and ``classifier.{0,2}`` the head. :func:`authors_key_map` gives the explicit rename table for a
spec, e.g. for M0::

    features.0.stem.0.conv.0      -> stem.conv_kx1
    features.1.layers.0.conv.1    -> stages.0.0.depthwise.bn_kx1
    features.4.layers.8.fc.2      -> stages.2.1.act_project.fc2
    classifier.2.linear.1         -> head.bn2

(each entry a module prefix; parameter and buffer names after it are unchanged).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..model import block_module_names
from ..specs import MicroNetSpec
from .errors import CheckpointError, listing
from .reader import strip_module_prefix

__all__ = [
    "AUTHORS_HEAD_PREFIX",
    "AUTHORS_PREFIXES",
    "authors_key_map",
    "convert_authors_state_dict",
    "map_authors_keys",
]

# Top-level module names of the authors' MicroNet: their keys start with these.
AUTHORS_HEAD_PREFIX = "classifier."
AUTHORS_PREFIXES = ("features.", AUTHORS_HEAD_PREFIX)

# Authors' sub-module prefixes inside one block (``features.{i}.``) -> ours, per block kind.
_DEPTHWISE = {"conv.0": "conv_kx1", "conv.1": "bn_kx1", "conv.2": "conv_1xk", "conv.3": "bn_1xk"}
_POINTWISE = {"conv.0": "conv", "conv.1": "bn"}
_SHIFT_MAX = {"fc.0": "fc1", "fc.2": "fc2"}


def _expand(layer: str, module: str, inner: Mapping[str, str]) -> dict[str, str]:
    return {f"layers.{layer}.{a}": f"{module}.{b}" for a, b in inner.items()}


_BLOCK_KEYS = {
    "A": {
        **_expand("0", "depthwise", _DEPTHWISE),
        **_expand("1", "act_depthwise", _SHIFT_MAX),
        **_expand("4", "project", _POINTWISE),
        **_expand("5", "act_project", _SHIFT_MAX),
    },
    "B": {
        **_expand("0", "expand", _POINTWISE),
        **_expand("1", "act_expand", _SHIFT_MAX),
    },
    "C": {
        **_expand("0", "expand", _POINTWISE),
        **_expand("1", "act_expand", _SHIFT_MAX),
        **_expand("3", "depthwise", _DEPTHWISE),
        **_expand("5", "act_depthwise", _SHIFT_MAX),
        **_expand("7", "project", _POINTWISE),
        **_expand("8", "act_project", _SHIFT_MAX),
    },
}
_STEM_KEYS = {f"stem.0.{a}": f"stem.{b}" for a, b in _DEPTHWISE.items()}
_HEAD_KEYS = {
    "classifier.0.linear.0": "head.fc1",
    "classifier.0.linear.1": "head.bn1",
    "classifier.2.linear.0": "head.fc2",
    "classifier.2.linear.1": "head.bn2",
}


def authors_key_map(spec: MicroNetSpec) -> dict[str, str]:
    """Module-prefix rename table, authors' names -> ours, for the architecture ``spec``."""
    table = {f"features.0.{a}": b for a, b in _STEM_KEYS.items()}
    for index, (row, name) in enumerate(zip(spec.blocks, block_module_names(spec)), start=1):
        for a, b in _BLOCK_KEYS[row.kind].items():
            table[f"features.{index}.{a}"] = f"{name}.{b}"
    table.update(_HEAD_KEYS)
    return table


def map_authors_keys(
    state_dict: Mapping[str, torch.Tensor], spec: MicroNetSpec
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename what the table knows; return (renamed state_dict, authors' keys left over)."""
    table = authors_key_map(spec)
    renamed, leftover = {}, []
    for key, value in state_dict.items():
        module, _, leaf = key.rpartition(".")
        if module in table:
            renamed[f"{table[module]}.{leaf}"] = value
        else:
            leftover.append(key)
    return renamed, leftover


def convert_authors_state_dict(
    state_dict: Mapping[str, torch.Tensor], spec: MicroNetSpec
) -> dict[str, torch.Tensor]:
    """Pure conversion of an authors' state_dict (``module.`` prefix allowed) to our names.

    Raises :class:`CheckpointError` naming every key that has no counterpart in ``spec``.
    Shapes are not checked here (:func:`~micronet_backbones.checkpoint.load_pretrained` does).
    """
    renamed, leftover = map_authors_keys(strip_module_prefix(state_dict), spec)
    if leftover:
        raise CheckpointError(
            f"{len(leftover)} key(s) of the authors' state_dict have no place in {spec.name}: "
            f"{listing(leftover)}"
        )
    return renamed
