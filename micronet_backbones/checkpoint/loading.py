"""Loading policy: a checkpoint (authors' or ours) into a MicroNet, all or nothing."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from ..specs import MicroNetSpec
from .authors_keys import AUTHORS_HEAD_PREFIX
from .errors import CheckpointError, listing
from .formats import HEAD_PREFIX, identify_arch, key_differences, to_our_names
from .reader import Source, read_checkpoint

__all__ = ["LoadResult", "load_pretrained"]


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
        CheckpointDownloadError: a URL that could not be downloaded (a CheckpointError too).
        FileNotFoundError: no file at the path.
    """
    spec = getattr(model, "spec", None)
    if not isinstance(spec, MicroNetSpec):
        raise TypeError(f"load_pretrained needs a MicroNet, got {type(model).__name__}")
    if skip_classifier is None:
        skip_classifier = getattr(model, "head", None) is None
    raw = read_checkpoint(source)
    converted, leftover, fmt = to_our_names(raw, spec)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    missing, unexpected, mismatched = key_differences(converted, expected, skip_classifier)
    unexpected += leftover  # authors'-format keys with no place in this architecture
    if missing or unexpected or mismatched:
        raise CheckpointError(
            _mismatch_message(raw, spec, missing, unexpected, mismatched, skip_classifier)
        )

    skipped = sorted(k for k in converted if skip_classifier and k.startswith(HEAD_PREFIX))
    to_load = {k: v for k, v in converted.items() if k in expected and k not in skipped}
    model.load_state_dict(to_load, strict=False)
    return LoadResult(loaded=sorted(to_load), skipped=skipped, source_format=fmt)


def _mismatch_message(raw, spec, missing, unexpected, mismatched, skip_classifier) -> str:
    """Which arch the checkpoint is (if another), every differing key, and a hint when only
    the classifier differs."""
    found = identify_arch(raw)
    if found is not None and found != spec.name:
        intro = f"the checkpoint is a {found}, but the model is a {spec.name}"
    else:
        intro = f"the checkpoint does not fit {spec.name}"
    details = []
    if missing:
        details.append(f"missing keys: {listing(missing)}")
    if unexpected:
        details.append(f"unexpected keys: {listing(unexpected)}")
    if mismatched:
        details.append(f"shape mismatches: {listing(mismatched)}")
    hint = ""
    only_head = all(k.startswith((HEAD_PREFIX, AUTHORS_HEAD_PREFIX)) for k in missing + unexpected)
    if not skip_classifier and only_head and all(m.startswith(HEAD_PREFIX) for m in mismatched):
        hint = " (only the classifier differs: pass skip_classifier=True to load the rest)"
    return f"{intro}; nothing was loaded. " + "; ".join(details) + hint
