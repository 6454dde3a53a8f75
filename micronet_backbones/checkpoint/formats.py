"""Whose key names a state_dict uses (the authors' or ours), and which architecture it is.

Format detection looks at the top-level names only; identification tries every released spec
(``specs.RELEASED``) and returns the one the checkpoint fits exactly, so that an error can say
"the checkpoint is a micronet_m1, but the model is a micronet_m0".
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import torch

from ..model import MicroNet
from ..specs import RELEASED, MicroNetSpec
from .authors_keys import AUTHORS_PREFIXES, map_authors_keys
from .errors import CheckpointError, listing

__all__ = [
    "HEAD_PREFIX",
    "identify_arch",
    "key_differences",
    "source_format",
    "to_our_names",
]

HEAD_PREFIX = "head."
_OUR_PREFIXES = ("stem.", "stages.", HEAD_PREFIX)
_OPTIONAL_SUFFIX = "num_batches_tracked"  # BN counters; FrozenBatchNorm2d has none


def source_format(state_dict: Mapping[str, torch.Tensor]) -> str:
    """The key names' owner: "authors" (``features.*``, ``classifier.*``) or "ours" (``stem.*``,
    ``stages.*``, ``head.*``); :class:`CheckpointError` naming the keys for a mix or others."""
    authors = [k for k in state_dict if k.startswith(AUTHORS_PREFIXES)]
    ours = [k for k in state_dict if k.startswith(_OUR_PREFIXES)]
    if authors and not ours:
        return "authors"
    if ours and not authors:
        return "ours"
    strange = [k for k in state_dict if k not in authors and k not in ours]
    raise CheckpointError(
        "keys are neither all the authors' (features.*, classifier.*) nor all ours "
        f"(stem.*, stages.*, head.*): {listing(strange or list(state_dict))}"
    )


def to_our_names(
    state_dict: Mapping[str, torch.Tensor], spec: MicroNetSpec
) -> tuple[dict[str, torch.Tensor], list[str], str]:
    """(state_dict in our names, authors' keys with no place in ``spec``, source format)."""
    fmt = source_format(state_dict)
    if fmt == "ours":
        return dict(state_dict), [], fmt
    renamed, leftover = map_authors_keys(state_dict, spec)
    return renamed, leftover, fmt


def key_differences(
    checkpoint: Mapping[str, torch.Tensor],
    expected: Mapping[str, torch.Size],
    skip_head: bool,
) -> tuple[list[str], list[str], list[str]]:
    """(missing, unexpected, shape mismatches) between checkpoint and model, our names.

    BN counters (``num_batches_tracked``) are optional on both sides; with ``skip_head`` the
    classifier (``head.*``) is out of scope.
    """

    def in_scope(key: str) -> bool:
        return not (skip_head and key.startswith(HEAD_PREFIX))

    def required(key: str) -> bool:
        return in_scope(key) and not key.endswith(_OPTIONAL_SUFFIX)

    missing = [k for k in expected if required(k) and k not in checkpoint]
    unexpected = [k for k in checkpoint if required(k) and k not in expected]
    mismatched = [
        f"{k} (checkpoint {tuple(checkpoint[k].shape)}, model {tuple(expected[k])})"
        for k in checkpoint
        if in_scope(k) and k in expected and tuple(checkpoint[k].shape) != tuple(expected[k])
    ]
    return missing, unexpected, mismatched


@functools.cache
def _classifier_shapes(spec: MicroNetSpec) -> dict[str, torch.Size]:
    """Parameter / buffer shapes of the full classifier of ``spec`` (built on the meta device)."""
    with torch.device("meta"):
        model = MicroNet(spec)
    return {k: v.shape for k, v in model.state_dict().items()}


def identify_arch(state_dict: Mapping[str, torch.Tensor]) -> str | None:
    """Name of the released architecture the checkpoint fits exactly (head ignored), if any."""
    for spec in RELEASED:
        try:
            converted, leftover, _ = to_our_names(state_dict, spec)
        except CheckpointError:
            return None
        if leftover:
            continue
        if not any(key_differences(converted, _classifier_shapes(spec), skip_head=True)):
            return spec.name
    return None
