"""tools/flops.py: params and fvcore multiply-adds at 224 x 224 equal the authors' figures."""

from __future__ import annotations

import importlib.util
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


def _load_tool():
    path = Path(__file__).resolve().parents[2] / "tools" / "flops.py"
    spec = importlib.util.spec_from_file_location("micronet_flops_tool", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_flops_table(capsys):
    tool = _load_tool()
    assert tool.main([]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:4]] for line in lines[2:]}
    assert rows == {name: list(figures) for name, figures in EXPECTED.items()}
