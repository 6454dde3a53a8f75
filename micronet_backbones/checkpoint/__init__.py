"""Checkpoints: the authors' format mapped to our module names, and all-or-nothing loading.

One concern per module, each importing only those listed before it (and the specs / model):

* :mod:`.errors` — ``CheckpointError``, ``CheckpointDownloadError``, key listings;
* :mod:`.reader` — a path, URL or mapping -> a state_dict (the package's one file reader);
* :mod:`.authors_keys` — the authors' key names -> ours (``authors_key_map``);
* :mod:`.formats` — whose names a state_dict uses, which released architecture it is;
* :mod:`.loading` — ``load_pretrained``: check everything, then load, or raise naming keys.

The registry imports ``load_pretrained`` from here; nothing here imports the registry (the
released architectures come from ``specs.RELEASED``).
"""

from .authors_keys import authors_key_map, convert_authors_state_dict
from .errors import CheckpointDownloadError, CheckpointError
from .formats import identify_arch, source_format
from .loading import LoadResult, load_pretrained
from .reader import load_file, read_checkpoint

__all__ = [
    "CheckpointDownloadError",
    "CheckpointError",
    "LoadResult",
    "authors_key_map",
    "convert_authors_state_dict",
    "identify_arch",
    "load_file",
    "load_pretrained",
    "read_checkpoint",
    "source_format",
]
