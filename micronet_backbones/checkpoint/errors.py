"""The checkpoint errors, and how they list keys (at most a dozen, then a count)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["CheckpointDownloadError", "CheckpointError", "listing"]

_MAX_LISTED = 12
_OFFLINE_ADVICE = (
    "Offline, download the file where there is network and pass its local path instead of the URL"
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be read, or does not fit the model (nothing was loaded)."""


class CheckpointDownloadError(CheckpointError):
    """A checkpoint URL that could not be downloaded (offline, unreachable, not found).

    Attributes:
        url: the URL that failed.
        reason: the download error's type and first line.
        advice: what to do offline; adapters re-raise with advice in their own terms (config
            keys), the core's names a local path.
    """

    def __init__(self, url: str, reason: str, advice: str = _OFFLINE_ADVICE) -> None:
        super().__init__(f"the download of {url} failed ({reason}). {advice}")
        self.url, self.reason, self.advice = url, reason, advice

    def __reduce__(self):  # keep the fields through pickling (e.g. from a worker process)
        return type(self), (self.url, self.reason, self.advice)


def listing(keys: Sequence[str]) -> str:
    """``"a, b, c"``, cut after a dozen keys with the number left out."""
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys) - _MAX_LISTED} more)" if len(keys) > _MAX_LISTED else "")
