"""Shared pytest settings: the `slow` marker and the authors' parity fixtures as files.

The fixtures themselves (compact ones vendored in tests/fixtures, large optional ones in
../shared/fixtures) and ``relative_error`` live in ``micronet_testing.py`` beside this file.
"""

from pathlib import Path

import pytest
from micronet_testing import save_authors_checkpoint

from micronet_backbones.registry import canonical_name


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: end-to-end training tests (minutes); they run in CI with the rest"
    )


@pytest.fixture(scope="session")
def authors_checkpoint(tmp_path_factory):
    """``get(arch) -> Path``: the compact fixture's weights of ``arch`` ("m3" or "micronet_m3")
    saved as a bare checkpoint in the authors' format (their key names), written once."""
    folder = tmp_path_factory.mktemp("authors_checkpoints")
    paths: dict[str, Path] = {}

    def get(arch: str) -> Path:
        name = canonical_name(arch)
        if name not in paths:
            paths[name] = save_authors_checkpoint(name, folder / f"{name}.pth")
        return paths[name]

    return get
