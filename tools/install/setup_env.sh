#!/usr/bin/env bash
# Creates .venv in the repository and installs the whole stack into it, from the package
# registries only: torch + torchvision, detectron2 0.6 (Python sources, no native ops),
# mmcv 2.1.0 with its compiled ops, mmengine, mmdet, mmpose, the COCO tools, ONNX and this
# package (editable). Idempotent: a second run re-uses what is installed and pip's wheel cache.
#
# Run it as `make setup`. PYTHON picks the interpreter for the venv (default: python3.11 or
# python3); the torch files on these machines are for Python 3.11.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
START=$SECONDS

step() { printf '\n==> [%4ss] %s\n' "$((SECONDS - START))" "$*"; }
pip_install() { "$PY" -m pip install --disable-pip-version-check "$@"; }
imports() { "$PY" - "$@" >/dev/null 2>&1 <<'EOF'
import importlib, sys
for spec in sys.argv[1:]:
    name, _, version = spec.partition("==")
    module = importlib.import_module(name)
    if version and module.__version__ != version:
        raise SystemExit(f"{name} {module.__version__} != {version}")
EOF
}

if [ ! -x "$PY" ]; then
  BASE_PY="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  step "creating $VENV with $BASE_PY"
  "$BASE_PY" -m venv "$VENV"
fi

step "build tools"
# setuptools < 81 keeps pkg_resources, which detectron2.model_zoo imports.
pip_install -q "setuptools>=70,<81" wheel ninja "cython>=3" "numpy>=2,<3"

step "torch 2.14.1 + torchvision 0.29.1"
# On these machines both come from files on disk (a CUDA build that runs on the CPU); the
# torch 2.13.0 CPU file there has no matching torchvision.
pip_install -q torch==2.14.1 torchvision==0.29.1

step "common dependencies"
# mmpose 1.3.2's runtime needs (chumpy, which it declares, does not build on this Python and
# is not needed for COCO keypoints), mmdet's, detectron2's fvcore/iopath pins, COCO tools,
# ONNX, timm (MicroNet registers in its model registry), the test runner and ruff (make lint).
pip_install -q \
  "fvcore==0.1.5.post20221221" "iopath>=0.1.7,<0.1.10" pycocotools \
  onnx onnxruntime pytest ruff "timm==1.0.31" huggingface_hub safetensors \
  opencv-python scipy six json-tricks munkres shapely terminaltables matplotlib \
  "mmengine==0.10.7" addict yapf pyyaml packaging rich termcolor

step "xtcocotools 1.14.3 built against the installed NumPy"
# Its published wheel was built against NumPy 1.x and fails on NumPy 2
# ("numpy.dtype size changed"); building from the sdist takes seconds and is cached by pip.
if ! imports xtcocotools.coco; then
  pip_install -q --no-binary xtcocotools --no-build-isolation "xtcocotools==1.14.3"
fi

step "detectron2 0.6 (official Python sources from PyPI, without native ops)"
# See tools/install/install_detectron2.py for every change it makes and why.
"$PY" tools/install/install_detectron2.py

step "mmcv 2.1.0 with compiled ops"
# mmcv's setup.py asks for -std=c++14/17; torch 2.14's headers need C++20, so the build goes
# through tools/install/cxx20.sh. pip keeps the built wheel in its cache for later runs.
if ! imports mmcv==2.1.0 mmcv.ops; then
  CC="$ROOT/tools/install/cxx20.sh" CXX="$ROOT/tools/install/cxx20.sh" \
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
    pip_install --no-build-isolation "mmcv==2.1.0"
fi

step "mmdet 3.3.0 and mmpose 1.3.2"
# --no-deps: mmpose declares chumpy (unbuildable here, unused for COCO); their other needs
# were installed above. mmpose imports mmcv.ops and mmdet at import time.
pip_install -q --no-deps "mmdet==3.3.0" "mmpose==1.3.2"

step "mmsegmentation 1.2.2"
# --no-deps: it accepts the mmcv 2.1 / mmengine 0.10 above; mmseg.utils imports a tokenizer
# needing ftfy and regex (declared only as its extras), mmseg.evaluation imports prettytable.
pip_install -q ftfy regex prettytable
pip_install -q --no-deps "mmsegmentation==1.2.2"

step "micronet_backbones (editable) and its native kernels"
pip_install -q --no-deps --no-build-isolation -e "$ROOT"
# The fused C++ ops (micronet_backbones/kernels/csrc, setup.py's ext_modules) are compiled in
# place (about a minute of CPU) with the C++20 compiler path mmcv uses; pip's editable install
# builds in an isolated environment without torch, so this is an explicit step. If it fails,
# the package runs on its PyTorch fallback (the status line says which).
CXX="$ROOT/tools/install/cxx20.sh" MAX_JOBS="${MAX_JOBS:-$(nproc)}" \
  "$PY" setup.py -q build_ext --inplace || echo "micronet kernels not built: PyTorch fallback"
"$PY" -c "from micronet_backbones import kernels; print('micronet kernels:', kernels.status())"

step "checking the stack imports"
"$PY" -c "import detectron2, detectron2.modeling, mmcv.ops, mmpose.models, mmseg.models, micronet_backbones; print('stack OK')"
step "done"
