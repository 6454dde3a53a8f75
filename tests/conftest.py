"""Shared pytest settings: the `slow` marker and the authors' parity fixtures."""

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES_DIR = Path(os.environ.get("MICRONET_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "slow: end-to-end training tests (minutes); they run in CI with the rest"
    )


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """The folder of the authors' parity fixtures (../shared/fixtures), or skip."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(
            f"authors' parity fixtures not found at {FIXTURES_DIR} "
            "(they live in ../shared/fixtures beside the repository; set MICRONET_FIXTURES to move them)"
        )
    return FIXTURES_DIR
