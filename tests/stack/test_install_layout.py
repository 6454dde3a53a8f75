"""The adapter folders install as micronet_backbones.<name>, never as bare packages."""

import subprocess
import sys
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# installed name -> folder of the repository
ADAPTERS = {
    "detection": "detection",
    "pose": "pose",
    "openmmlab": "openmmlab",
    "segmentation": "segmentation",
    "mmdetection": "mmdetection",
}


def test_installed_package_maps_adapter_folders_and_no_bare_packages(tmp_path):
    # Run outside the repository so the working directory cannot shadow the installed package.
    code = (
        "import importlib.util as u, pathlib, sys\n"
        "for name in sys.argv[1:]:\n"
        "    print(pathlib.Path(u.find_spec(f'micronet_backbones.{name}').origin).parent)\n"
        "print(*(u.find_spec(name) for name in sys.argv[1:]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *ADAPTERS],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for line, folder in zip(out, ADAPTERS.values()):
        assert Path(line) == REPO_ROOT / folder
    assert out[len(ADAPTERS)] == " ".join(["None"] * len(ADAPTERS))


def test_wheel_holds_adapters_under_micronet_backbones(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO_ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("micronet_backbones-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {
        name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")
    }
    assert top_level == {"micronet_backbones"}
    for name in ADAPTERS:
        assert f"micronet_backbones/{name}/__init__.py" in names
