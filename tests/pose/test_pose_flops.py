"""tools/flops.py --pose: the whole pose models land within 15% of the paper (params and MAdds)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fvcore")

PAPER = {"micronet_m2": (1.8e6, 116.8e6), "micronet_m3": (2.2e6, 163.2e6)}


TOOL = Path(__file__).resolve().parents[2] / "tools" / "flops.py"


def test_pose_models_match_the_paper_within_15_percent():
    result = subprocess.run(
        [sys.executable, str(TOOL), "--pose"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    print(out)
    rows = {
        line.split("|")[1].split()[0]: [c.strip() for c in line.split("|")[2:-1]]
        for line in out.strip().splitlines()[2:]
    }
    assert set(rows) == set(PAPER)
    for name, (paper_params, paper_madds) in PAPER.items():
        params = int(rows[name][0].replace(",", ""))
        madds = float(rows[name][3].rstrip("M")) * 1e6
        assert abs(params / paper_params - 1) <= 0.15, (name, params)
        assert abs(madds / paper_madds - 1) <= 0.15, (name, madds)
