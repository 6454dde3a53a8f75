"""Checkpoints: the authors' format mapped to our module names, and all-or-nothing loading.

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

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import torch
from torch import nn

from .model import block_module_names
from .specs import MicroNetSpec

__all__ = [
    "CheckpointError",
    "LoadResult",
    "authors_key_map",
    "convert_authors_state_dict",
    "load_pretrained",
    "read_checkpoint",
]

Source = Union[str, os.PathLike, Mapping]

_HEAD_PREFIX = "head."
_OPTIONAL_SUFFIX = "num_batches_tracked"  # BN counters; FrozenBatchNorm2d has none
_MAX_LISTED = 12


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model (nothing was loaded)."""


@dataclass
class LoadResult:
    """What :func:`load_pretrained` did.

    Attributes:
        loaded: our keys copied into the model.
        skipped: checkpoint keys (ours) deliberately not loaded (the classifier head).
        source_format: "authors" or "ours".
    """

    loaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    source_format: str = "ours"


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


def _split_key(key: str) -> tuple[str, str]:
    module, _, leaf = key.rpartition(".")
    return module, leaf


def _map_authors_keys(
    state_dict: Mapping[str, torch.Tensor], spec: MicroNetSpec
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename what the table knows; return (renamed state_dict, authors' keys left over)."""
    table = authors_key_map(spec)
    renamed, leftover = {}, []
    for key, value in state_dict.items():
        module, leaf = _split_key(key)
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
    Shapes are not checked here (:func:`load_pretrained` does).
    """
    renamed, leftover = _map_authors_keys(_strip_module_prefix(state_dict), spec)
    if leftover:
        raise CheckpointError(
            f"{len(leftover)} key(s) of the authors' state_dict have no place in {spec.name}: "
            f"{_listing(leftover)}"
        )
    return renamed


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")


def _strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix (DataParallel / DistributedDataParallel) where present."""
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def read_checkpoint(source: Source) -> dict[str, torch.Tensor]:
    """Read a state_dict from a path, a URL (through torch.hub's cache), or a mapping.

    Accepts a bare state_dict or one under ``"state_dict"`` or ``"model"``, with or without the
    ``module.`` prefix. Files are read with ``torch.load(..., weights_only=True)``. Raises
    :class:`CheckpointError` for anything that is not such a checkpoint, ``FileNotFoundError``
    for a missing file.
    """
    if isinstance(source, Mapping):
        raw, where = source, "the given mapping"
    else:
        text = os.fspath(source)
        where = text
        try:
            if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", text):
                raw = torch.hub.load_state_dict_from_url(
                    text, map_location="cpu", progress=False, weights_only=True
                )
            else:
                if not Path(text).is_file():
                    raise FileNotFoundError(f"no checkpoint file at {text}")
                raw = torch.load(text, map_location="cpu", weights_only=True)
        except (FileNotFoundError, CheckpointError):
            raise
        except Exception as error:  # unpickling / zip / url errors of every kind
            raise CheckpointError(
                f"{where} could not be read as a PyTorch checkpoint "
                f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"
            ) from error
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{where} holds a {type(raw).__name__}, not a state_dict")
    for wrapper in ("state_dict", "model"):
        if isinstance(raw.get(wrapper), Mapping):
            raw = raw[wrapper]
            break
    not_tensors = [str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not raw:
        raise CheckpointError(
            f"{where} is not a state_dict (expected names -> tensors, bare or under "
            f"'state_dict'); non-tensor entries: {_listing(not_tensors) or 'none, it is empty'}"
        )
    return _strip_module_prefix(raw)


def _source_format(state_dict: Mapping[str, torch.Tensor]) -> str:
    authors = [k for k in state_dict if k.startswith(("features.", "classifier."))]
    ours = [k for k in state_dict if k.startswith(("stem.", "stages.", _HEAD_PREFIX))]
    if authors and not ours:
        return "authors"
    if ours and not authors:
        return "ours"
    strange = [k for k in state_dict if k not in authors and k not in ours]
    raise CheckpointError(
        "keys are neither all the authors' (features.*, classifier.*) nor all ours "
        f"(stem.*, stages.*, head.*): {_listing(strange or list(state_dict))}"
    )


def _to_ours(
    state_dict: Mapping[str, torch.Tensor], spec: MicroNetSpec
) -> tuple[dict[str, torch.Tensor], list[str], str]:
    fmt = _source_format(state_dict)
    if fmt == "ours":
        return dict(state_dict), [], fmt
    renamed, leftover = _map_authors_keys(state_dict, spec)
    return renamed, leftover, fmt


def _differences(
    checkpoint: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
    skip_head: bool,
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) between checkpoint and model, our names."""
    optional = lambda k: k.endswith(_OPTIONAL_SUFFIX)  # noqa: E731
    in_scope = lambda k: not (skip_head and k.startswith(_HEAD_PREFIX))  # noqa: E731
    missing = [k for k in expected if in_scope(k) and k not in checkpoint and not optional(k)]
    unexpected = [k for k in checkpoint if in_scope(k) and k not in expected and not optional(k)]
    mismatched = [
        f"{k} (checkpoint {tuple(checkpoint[k].shape)}, model {tuple(expected[k])})"
        for k in checkpoint
        if in_scope(k) and k in expected and tuple(checkpoint[k].shape) != tuple(expected[k])
    ]
    return missing, unexpected, mismatched


def _identify(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Registry name of the architecture the checkpoint fits exactly (head ignored), if any."""
    from .registry import get_spec, list_models, reference_shapes  # avoid an import cycle

    for name in list_models():
        spec = get_spec(name)
        try:
            converted, leftover, _ = _to_ours(state_dict, spec)
        except CheckpointError:
            return None
        if leftover:
            continue
        if not any(_differences(converted, reference_shapes(name), skip_head=True)):
            return name
    return None


def load_pretrained(
    model: nn.Module,
    source: Source,
    *,
    skip_classifier: bool | None = None,
) -> LoadResult:
    """Load a checkpoint (authors' or ours) into a :class:`MicroNet`, all or nothing.

    Args:
        model: a ``MicroNet`` (also after BatchNorm conversion to FrozenBatchNorm2d /
            SyncBatchNorm; ``num_batches_tracked`` counters are optional on both sides).
        source: path, URL (``http(s)://``, ``file://``; cached by torch.hub) or a state_dict.
        skip_classifier: ignore the checkpoint's classifier head (``head.*`` /
            ``classifier.*``) and leave the model's head as it is. Default: skip when the model
            has no head (``features_only``), load it otherwise.

    Returns:
        :class:`LoadResult` (keys loaded, keys skipped, format of the source).

    Raises:
        CheckpointError: unreadable source, checkpoint of another architecture (both named),
            or any missing / unexpected key or shape mismatch (keys listed). The model is only
            written to after the whole checkpoint has been checked, so it is never half-loaded.
    """
    spec = getattr(model, "spec", None)
    if not isinstance(spec, MicroNetSpec):
        raise TypeError(f"load_pretrained needs a MicroNet, got {type(model).__name__}")
    if skip_classifier is None:
        skip_classifier = getattr(model, "head", None) is None
    raw = read_checkpoint(source)
    converted, leftover, fmt = _to_ours(raw, spec)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing, unexpected, mismatched = _differences(converted, expected, skip_classifier)
    unexpected += leftover  # authors'-format keys with no place in this architecture
    if missing or unexpected or mismatched:
        found = _identify(raw)
        if found is not None and found != spec.name:
            intro = f"the checkpoint is a {found}, but the model is a {spec.name}"
        else:
            intro = f"the checkpoint does not fit {spec.name}"
        details = []
        if missing:
            details.append(f"missing keys: {_listing(missing)}")
        if unexpected:
            details.append(f"unexpected keys: {_listing(unexpected)}")
        if mismatched:
            details.append(f"shape mismatches: {_listing(mismatched)}")
        hint = ""
        if not skip_classifier and all(
            k.startswith((_HEAD_PREFIX, "classifier.")) for k in missing + unexpected
        ) and all(m.startswith(_HEAD_PREFIX) for m in mismatched):
            hint = " (only the classifier differs: pass skip_classifier=True to load the rest)"
        raise CheckpointError(f"{intro}; nothing was loaded. " + "; ".join(details) + hint)

    skipped = sorted(k for k in converted if skip_classifier and k.startswith(_HEAD_PREFIX))
    to_load = {k: v for k, v in converted.items() if k in expected and k not in skipped}
    model.load_state_dict(to_load, strict=False)
    return LoadResult(loaded=sorted(to_load), skipped=skipped, source_format=fmt)
