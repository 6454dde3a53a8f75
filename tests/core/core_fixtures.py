"""Helpers of the core tests: where the authors' parity fixtures live, how to compare.

(A module of its own, not conftest.py, so that test modules can import it by a unique name
when several test folders, each with a conftest.py, are collected together.)
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest
import torch

ARCHS = ("m0", "m1", "m2", "m3")


def fixtures_dir() -> Path:
    """``$MICRONET_FIXTURES``, else ``<repo>/../shared/fixtures``."""
    default = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
    return Path(os.environ.get("MICRONET_FIXTURES", default))


def fixture_path(arch: str) -> Path:
    path = fixtures_dir() / f"official_micronet_{arch}.pt"
    if not path.is_file():
        pytest.skip(
            f"parity fixture {path} is absent (set MICRONET_FIXTURES to the folder holding "
            "official_micronet_m{0,1,2,3}.pt)"
        )
    return path


@functools.lru_cache(maxsize=None)
def _load(path: str) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_fixture(arch: str) -> dict:
    """The fixture dict: arch, state_dict (authors' keys), input, logits, features."""
    return _load(str(fixture_path(arch)))


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return ((actual - expected).abs().max() / expected.abs().max()).item()
