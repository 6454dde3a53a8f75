"""Helpers shared by every test folder: the authors' parity fixtures and how outputs are compared.

Two sets of fixtures hold outputs of the authors' released MicroNet code (eval mode, float32):

* compact, vendored in ``tests/fixtures/`` (always present): ``authors_outputs_micronet_m*.pt``
  hold the authors' key names and shapes, the logits (2, 1000) and the feature at each stride
  {4, 8, 16, 32} for an input (2, 3, 96, 128). The weights and the input are not stored: a
  formula re-creates them (splitmix64 streams, see ``tests/fixtures/README.md``), so that parity
  with the authors' code is checked on every clone.
* large, optional (``$MICRONET_FIXTURES``, else ``../shared/fixtures`` beside the repository):
  ``official_micronet_m*.pt`` with their own random weights and a (2, 3, 224, 224) input. Tests
  that use them skip when the folder is absent.

Both give the same dict: ``arch`` ("m0" ... "m3"), ``state_dict`` (the authors' keys),
``input``, ``logits`` and ``features`` ({stride: tensor}).

(A module with a unique name, not conftest.py, so that test modules of every folder can import
it; pytest puts ``tests/`` on the import path for ``tests/conftest.py``.)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from micronet_backbones.registry import canonical_name

__all__ = [
    "ARCHS",
    "COMPACT_DIR",
    "STRIDES",
    "compact_fixture",
    "formula_input",
    "formula_state_dict",
    "large_fixture",
    "large_fixture_path",
    "large_fixtures_dir",
    "relative_error",
    "save_authors_checkpoint",
    "splitmix64",
    "uniform",
]

ARCHS = ("m0", "m1", "m2", "m3")
STRIDES = (4, 8, 16, 32)
COMPACT_DIR = Path(__file__).resolve().parent / "fixtures"
_REPO_ROOT = Path(__file__).resolve().parents[1]


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected| (shapes must agree): one number per tensor, so
    a tolerance means the same for logits and for feature maps of any scale."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return ((actual - expected).abs().max() / expected.abs().max()).item()


# --- the formula of the compact fixtures ---------------------------------------------------------


def splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 of each element of ``z`` (uint64 array, wrapping arithmetic)."""
    z = z.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(stream: int, n: int) -> np.ndarray:
    """(n,) float64 in [0, 1): ``splitmix64((stream << 32) + i) >> 40`` over 2**24, i < n."""
    counters = np.uint64(stream << 32) + np.arange(n, dtype=np.uint64)
    return (splitmix64(counters) >> np.uint64(40)).astype(np.float64) / 2.0**24


def _formula_tensor(key: str, shape: Sequence[int], stream: int) -> torch.Tensor:
    numel = int(np.prod(shape, dtype=np.int64))
    if key.endswith("num_batches_tracked"):
        return torch.zeros(tuple(shape), dtype=torch.long)
    u = uniform(stream, numel)
    if key.endswith("running_var"):
        values = 0.5 + u
    elif key.endswith("running_mean"):
        values = (u - 0.5) * 0.2
    elif len(shape) >= 2:
        values = (u - 0.5) * 2 * np.sqrt(1 / (numel / shape[0]))
    elif key.endswith("weight"):
        values = 0.5 + u
    else:
        values = (u - 0.5) * 0.2
    return torch.from_numpy(values.reshape(tuple(shape))).to(torch.float32)


def formula_state_dict(
    keys: Sequence[str], shapes: Sequence[Sequence[int]]
) -> dict[str, torch.Tensor]:
    """The weights of the compact fixtures: the k-th key (k = 1, 2, ...) from stream k."""
    return {
        key: _formula_tensor(key, shape, stream)
        for stream, (key, shape) in enumerate(zip(keys, shapes), start=1)
    }


def formula_input(shape: Sequence[int]) -> torch.Tensor:
    """The input of the compact fixtures: stream 0 mapped to [-1, 1), float32."""
    numel = int(np.prod(shape, dtype=np.int64))
    return torch.from_numpy((uniform(0, numel) * 2 - 1).reshape(tuple(shape))).to(torch.float32)


def _short(arch: str) -> str:
    """ "m3" for any spelling of an arch ("m3", "micronet_m3")."""
    return canonical_name(arch).removeprefix("micronet_")


@functools.cache
def _compact(arch: str) -> dict:
    stored = torch.load(
        COMPACT_DIR / f"authors_outputs_micronet_{arch}.pt", map_location="cpu", weights_only=True
    )
    return {
        "arch": stored["arch"],
        "state_dict": formula_state_dict(stored["keys"], stored["shapes"]),
        "input": formula_input(stored["input_shape"]),
        "logits": stored["logits"],
        "features": dict(stored["features"]),
    }


def compact_fixture(arch: str) -> dict:
    """The vendored fixture of ``arch`` (either spelling) with its weights and input rebuilt."""
    return _compact(_short(arch))


def save_authors_checkpoint(arch: str, path: str | os.PathLike) -> Path:
    """Write the compact fixture's weights as a bare authors' checkpoint (their key names)."""
    torch.save(compact_fixture(arch)["state_dict"], path)
    return Path(path)


# --- the large, optional fixtures ----------------------------------------------------------------


def large_fixtures_dir() -> Path:
    """``$MICRONET_FIXTURES``, else ``<repo>/../shared/fixtures`` (may be absent)."""
    default = _REPO_ROOT.parent / "shared" / "fixtures"
    return Path(os.environ.get("MICRONET_FIXTURES", default))


def large_fixture_path(arch: str) -> Path:
    """``official_micronet_<arch>.pt`` in :func:`large_fixtures_dir`, or skip the test."""
    path = large_fixtures_dir() / f"official_micronet_{_short(arch)}.pt"
    if not path.is_file():
        pytest.skip(
            f"optional large fixture {path} is absent (set MICRONET_FIXTURES to the folder "
            "holding official_micronet_m{0,1,2,3}.pt; the compact fixtures in tests/fixtures "
            "are checked regardless)"
        )
    return path


@functools.cache
def _load(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def large_fixture(arch: str) -> dict:
    """The large fixture dict of ``arch`` (see the module docstring), or skip."""
    return _load(str(large_fixture_path(arch)))
