"""The checkpoint errors, and how they list keys (at most a dozen, then a count)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CheckpointDownloadError", "CheckpointError", "listing"]

_MAX_LISTED = 12


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model (nothing was loaded)."""


class CheckpointDownloadError(CheckpointError):
    """A checkpoint URL that could not be downloaded (offline, unreachable, not found).

    Attributes:
        url: the URL that failed; adapters add how to give the weights offline in their terms.
    """

    def __init__(self, message: str, url: str) -> None:
        super().__init__(message)
        self.url = url

    def __reduce__(self):  # keep ``url`` through pickling (e.g. from a worker process)
        return type(self), (str(self), self.url)


def listing(keys: Sequence[str]) -> str:
    """``"a, b, c"``, cut after a dozen keys with the number left out."""
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")
