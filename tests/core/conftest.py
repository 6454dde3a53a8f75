"""Core tests: run on one intra-op thread."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _single_thread():
    """Run core tests on one intra-op thread.

    The models are tiny: on a small, shared CPU, OpenMP's thread team costs far more than it
    gives (a 2-thread M0 forward measured 50x slower than 1-thread while other jobs ran).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
