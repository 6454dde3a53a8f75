"""Reading a checkpoint: a path, a URL (through torch.hub's cache) or a mapping -> a state_dict.

The one reader of checkpoint files in the package: ``torch.load(..., weights_only=True)`` with
errors that name the file and say what went wrong (no file, a failed download, not a checkpoint,
not a state_dict). It knows no key names; :mod:`.formats` tells whose they are.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Union
from urllib.parse import urlparse

import torch

from .errors import CheckpointDownloadError, CheckpointError, listing

__all__ = ["Source", "load_file", "read_checkpoint", "strip_module_prefix"]

Source = Union[str, os.PathLike, Mapping]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_WRAPPERS = ("state_dict", "model")


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the ``module.`` prefix (DataParallel / DistributedDataParallel) where present."""
    return {k[len("module.") :] if k.startswith("module.") else k: v for k, v in state_dict.items()}


def _first_line(error: BaseException) -> str:
    text = str(error)
    return f"{type(error).__name__}: {text.splitlines()[0] if text else ''}"


def _download(url: str) -> Path:
    """The cached copy of ``url`` in torch.hub's ``checkpoints`` folder, downloaded if absent.

    Raises :class:`CheckpointDownloadError` when the download fails (e.g. offline).
    """
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if not cached.is_file():
        cached.parent.mkdir(parents=True, exist_ok=True)
        try:
            torch.hub.download_url_to_file(url, str(cached), progress=False)
        except Exception as error:  # URLError, HTTPError, timeouts, unknown schemes, ...
            raise CheckpointDownloadError(url, _first_line(error)) from error
    return cached


def load_file(source: str | os.PathLike) -> object:
    """``torch.load(..., weights_only=True)`` of a path or URL, whatever it holds.

    Raises:
        FileNotFoundError: no file at the path.
        CheckpointDownloadError: the URL could not be downloaded.
        CheckpointError: the file is no PyTorch checkpoint readable with ``weights_only``.
    """
    text = os.fspath(source)
    path = _download(text) if _URL.match(text) else Path(text)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {text}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling / zip errors of every kind
        raise CheckpointError(
            f"{text} could not be read as a PyTorch checkpoint ({_first_line(error)})"
        ) from error


def read_checkpoint(source: Source) -> dict[str, torch.Tensor]:
    """Read a state_dict from a path, a URL (through torch.hub's cache), or a mapping.

    Accepts a bare state_dict or one under ``"state_dict"`` or ``"model"``, with or without the
    ``module.`` prefix. Files are read with ``torch.load(..., weights_only=True)``.

    Raises:
        FileNotFoundError: a missing file.
        CheckpointDownloadError: a URL that could not be downloaded (says what to do offline).
        CheckpointError: anything that is not such a checkpoint.
    """
    if isinstance(source, Mapping):
        raw, where = source, "the given mapping"
    else:
        raw, where = load_file(source), os.fspath(source)
    if not isinstance(raw, Mapping):
        raise CheckpointError(f"{where} holds a {type(raw).__name__}, not a state_dict")
    for wrapper in _WRAPPERS:
        if isinstance(raw.get(wrapper), Mapping):
            raw = raw[wrapper]
            break
    not_tensors = [str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor)]
    if not_tensors or not raw:
        raise CheckpointError(
            f"{where} is not a state_dict (expected names -> tensors, bare or under "
            f"'state_dict'); non-tensor entries: {listing(not_tensors) or 'none, it is empty'}"
        )
    return strip_module_prefix(raw)
