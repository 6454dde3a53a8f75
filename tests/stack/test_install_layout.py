"""The adapters install as micronet_backbones.detection / .pose, never as bare packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_installed_package_maps_adapter_folders_and_no_bare_packages(tmp_path):
    # Run outside the repository so the working directory cannot shadow the installed package.
    code = (
        "import importlib.util as u, micronet_backbones, pathlib;"
        "print(pathlib.Path(u.find_spec('micronet_backbones.detection').origin).parent);"
        "print(pathlib.Path(u.find_spec('micronet_backbones.pose').origin).parent);"
        "print(u.find_spec('detection'), u.find_spec('pose'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert Path(out[0]) == REPO_ROOT / "detection"
    assert Path(out[1]) == REPO_ROOT / "pose"
    assert out[2] == "None None"


def test_wheel_holds_adapters_under_micronet_backbones(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(REPO_ROOT)],
        check=True, capture_output=True,
    )
    (wheel,) = tmp_path.glob("micronet_backbones-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"micronet_backbones"}
    assert "micronet_backbones/detection/__init__.py" in names
    assert "micronet_backbones/pose/__init__.py" in names
