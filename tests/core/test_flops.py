"""tools/flops.py: params and fvcore multiply-adds at 224 x 224 equal the authors' figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fvcore")

# The fixture README's figures for the authors' models (fvcore, one multiply-add = one flop).
EXPECTED = {
    "micronet_m0": ("1,019,590", "4.58M"),
    "micronet_m1": ("1,777,587", "6.87M"),
    "micronet_m2": ("2,393,876", "13.72M"),
    "micronet_m3": ("2,622,960", "23.48M"),
}


TOOL = Path(__file__).resolve().parents[2] / "tools" / "flops.py"


def test_flops_table():
    result = subprocess.run(
        [sys.executable, str(TOOL)], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in lines[2:]
    }
    assert rows == {name: list(figures) for name, figures in EXPECTED.items()}
