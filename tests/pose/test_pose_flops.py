"""tools/flops.py --pose: the whole pose models land within 15% of the paper (params and MAdds)."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("fvcore")

PAPER = {"micronet_m2": (1.8e6, 116.8e6), "micronet_m3": (2.2e6, 163.2e6)}


def _load_tool():
    path = Path(__file__).resolve().parents[2] / "tools" / "flops.py"
    spec = importlib.util.spec_from_file_location("micronet_flops_tool_pose", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pose_models_match_the_paper_within_15_percent(capsys):
    tool = _load_tool()
    assert tool.main(["--pose"]) == 0
    out = capsys.readouterr().out
    print(out)
    rows = {line.split("|")[1].split()[0]: [c.strip() for c in line.split("|")[2:-1]]
            for line in out.strip().splitlines()[2:]}
    assert set(rows) == set(PAPER)
    for name, (paper_params, paper_madds) in PAPER.items():
        params = int(rows[name][0].replace(",", ""))
        madds = float(rows[name][3].rstrip("M")) * 1e6
        assert abs(params / paper_params - 1) <= 0.15, (name, params)
        assert abs(madds / paper_madds - 1) <= 0.15, (name, madds)
