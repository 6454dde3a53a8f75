"""Install detectron2 0.6 from its official Python sources on PyPI, without native ops.

Detectron2 publishes no wheels for current torch, and the only copy of its v0.6 sources on
PyPI is the ``pb1-detectron2==0.6`` sdist: its Python files are byte-identical to upstream's
``v0.6`` tag, but it ships no C++ sources (``detectron2/layers/csrc`` is missing), so it cannot
be installed as it is. This script

1. leaves any importable detectron2 alone when it has native ops (a compiled ``_C``), or when
   it is the very install this script makes (a ``_C`` module with ``NATIVE_OPS = False`` and
   this script's ``PATCH_LEVEL``); an install made by an earlier version of this script (an
   older or no ``PATCH_LEVEL``) is replaced by the current one;
2. downloads the sdist from the package index (``PIP_INDEX_URL`` or PyPI), and checks its
   sha256 against the pin below before using it (cached under ``--cache-dir``);
3. applies these changes to a copy of the sources, each checked to apply exactly:
   a. ``setup.py``: the distribution is named ``detectron2`` (not ``pb1-detectron2``), so that
      ``pip show detectron2`` and requirements naming ``detectron2`` see it;
   b. ``setup.py``: no ``ext_modules`` (the C++ sources are absent);
   c. ``setup.py``: the model-zoo YAML/py configs, which the sdist keeps inside
      ``detectron2/model_zoo/configs``, are declared as package data (upstream's
      ``get_model_zoo_configs()`` looks for a top-level ``configs/`` that the sdist lacks and
      would install none of them);
   d. the post-0.6 upstream compatibility fixes: ``Image.LINEAR`` -> ``Image.BILINEAR``
      (Pillow >= 10 removed ``LINEAR``; it was an alias of ``BILINEAR``), and the NumPy aliases
      ``np.int`` / ``np.bool`` / ``np.float`` -> ``int`` / ``bool`` / ``float`` (removed in
      NumPy 1.24; they were aliases of the builtins);
   e. a pure-Python ``detectron2/_C.py``: detectron2 imports ``_C`` at module level in
      ``layers/deform_conv.py``, ``layers/roi_align_rotated.py``, ``layers/rotated_boxes.py``
      and ``evaluation/fast_eval_api.py``. Faster R-CNN, RetinaNet and Keypoint R-CNN with FPN
      use none of these ops (they use torchvision's nms / roi_align). Each native-only op
      (rotated boxes, deformable conv, rotated RoIAlign, the fast C++ COCOeval) raises an
      error that says detectron2 was installed without native ops;
   f. ``detectron2/export/__init__.py``: the caffe2 exporter (``export/api.py``, which imports
      ``caffe2.proto`` at module level) is imported only when caffe2 is importable, as upstream
      does after 0.6. torch 2.x ships no caffe2, so without this ``import detectron2.export``
      fails and with it its TorchScript/ONNX path (``TracingAdapter``,
      ``scripting_with_instances``, ``dump_torchscript_IR``) imports; ``Caffe2Tracer`` and the
      other caffe2 names are absent, as upstream;
4. installs the patched sources with pip (``--no-build-isolation``: its setup.py imports torch).

Usage: ``python tools/install/install_detectron2.py [--cache-dir DIR]`` with the target
environment's python.
"""

import argparse
import hashlib
import importlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

SDIST_NAME = "pb1-detectron2"
SDIST_FILE = "pb1-detectron2-0.6.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
VERSION = "0.6"

NATIVE_OPS_STUB = '''"""Stand-in for detectron2's compiled extension (installed by micronet_backbones).

This detectron2 was installed from its Python sources without native ops. Models that need
none of them (Faster R-CNN, RetinaNet, Keypoint R-CNN with FPN) work; the ops below raise.
"""

NATIVE_OPS = False
PATCH_LEVEL = {patch_level}

_MESSAGE = (
    "detectron2 was installed without native ops (micronet_backbones' tools/install/"
    "install_detectron2.py), so '{}' is not available. Install detectron2 from source with "
    "its C++ extension to use it."
)


def _native_only(name):
    def op(*args, **kwargs):
        raise RuntimeError(_MESSAGE.format(name))

    op.__name__ = name
    return op


# rotated boxes (layers/rotated_boxes.py, layers/roi_align_rotated.py)
box_iou_rotated = _native_only("box_iou_rotated")
roi_align_rotated_forward = _native_only("roi_align_rotated_forward")
roi_align_rotated_backward = _native_only("roi_align_rotated_backward")
# deformable convolution (layers/deform_conv.py)
deform_conv_forward = _native_only("deform_conv_forward")
deform_conv_backward_input = _native_only("deform_conv_backward_input")
deform_conv_backward_filter = _native_only("deform_conv_backward_filter")
modulated_deform_conv_forward = _native_only("modulated_deform_conv_forward")
modulated_deform_conv_backward = _native_only("modulated_deform_conv_backward")
# fast COCOeval (evaluation/fast_eval_api.py); COCOEvaluator(use_fast_impl=False) avoids it
InstanceAnnotation = _native_only("InstanceAnnotation")
COCOevalEvaluateImages = _native_only("COCOevalEvaluateImages")
COCOevalAccumulate = _native_only("COCOevalAccumulate")


# utils/collect_env.py reports these
def get_compiler_version():
    return "none (detectron2 installed without native ops)"


def get_cuda_version():
    return "none (detectron2 installed without native ops)"


def has_cuda():
    return False
'''

# Raised whenever the set of changes (3a-3f) changes, so that a re-run replaces an older install.
PATCH_LEVEL = 2

# (f) upstream's post-0.6 guard: the caffe2 exporter only when caffe2 exists.
EXPORT_INIT_OLD = "from .api import *\n"
EXPORT_INIT_NEW = """try:
    from caffe2.proto import caffe2_pb2 as _caffe2_pb2  # noqa: F401
except ImportError:  # caffe2 is optional; torch 2.x has none (patched by micronet_backbones)
    pass
else:
    from .api import *
"""

NUMPY_ALIAS = re.compile(r"\bnp\.(int|bool|float)\b(?![\w.])")


def installed_state():
    """'native', 'ours', 'outdated' (ours from an older PATCH_LEVEL), or None (absent or broken)."""
    try:
        detectron2 = importlib.import_module("detectron2")
        importlib.import_module("detectron2.modeling")
    except Exception:
        return None
    try:
        native = importlib.import_module("detectron2._C")
    except Exception:
        return None
    if getattr(native, "NATIVE_OPS", True) is False:
        if detectron2.__version__ != VERSION:
            return None
        return "ours" if getattr(native, "PATCH_LEVEL", 1) == PATCH_LEVEL else "outdated"
    return "native"


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def index_url():
    return os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple").rstrip("/")


def fetch_sdist(cache_dir):
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / SDIST_FILE
    if target.exists() and sha256(target) == SDIST_SHA256:
        return target
    page_url = f"{index_url()}/{SDIST_NAME}/"
    with urllib.request.urlopen(page_url, timeout=60) as response:
        page = response.read().decode()
    links = re.findall(r'href="([^"]+)"', page)
    matches = [link for link in links if link.split("#")[0].endswith("/" + SDIST_FILE)]
    if not matches:
        raise SystemExit(f"{SDIST_FILE} is not listed on {page_url}")
    url = urllib.parse.urljoin(page_url, matches[0].split("#")[0])
    partial = target.with_suffix(".part")
    with urllib.request.urlopen(url, timeout=300) as response, open(partial, "wb") as f:
        shutil.copyfileobj(response, f)
    actual = sha256(partial)
    if actual != SDIST_SHA256:
        partial.unlink()
        raise SystemExit(
            f"sha256 of {SDIST_FILE} is {actual}, expected {SDIST_SHA256}; not installing it"
        )
    partial.rename(target)
    return target


def replace_exactly(path, old, new, count=1):
    text = path.read_text()
    found = text.count(old)
    if found != count:
        raise SystemExit(
            f"patch of {path}: expected {count} occurrence(s) of {old!r}, found {found}"
        )
    path.write_text(text.replace(old, new))


def patch_sources(root):
    setup_py = root / "setup.py"
    replace_exactly(setup_py, 'name="pb1-detectron2",', 'name="detectron2",')  # (a)
    replace_exactly(setup_py, "ext_modules=get_extensions(),", "ext_modules=[],")  # (b)
    replace_exactly(  # (c)
        setup_py,
        'package_data={"detectron2.model_zoo": get_model_zoo_configs()},',
        'package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},',
    )
    replace_exactly(  # (d) Pillow >= 10
        root / "detectron2/data/transforms/transform.py",
        "interp=Image.LINEAR",
        "interp=Image.BILINEAR",
    )
    patched = 0
    for path in sorted((root / "detectron2").rglob("*.py")):  # (d) NumPy >= 1.24
        text = path.read_text()
        new, n = NUMPY_ALIAS.subn(lambda m: m.group(1), text)
        if n:
            path.write_text(new)
            patched += n
    if patched == 0:
        raise SystemExit("patch: found no np.int / np.bool / np.float to replace; sources changed?")
    stub = NATIVE_OPS_STUB.replace("{patch_level}", str(PATCH_LEVEL))
    (root / "detectron2" / "_C.py").write_text(stub)  # (e)
    replace_exactly(root / "detectron2/export/__init__.py", EXPORT_INIT_OLD, EXPORT_INIT_NEW)  # (f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        / "micronet_backbones",
        help="where the verified sdist is kept between runs (default: %(default)s)",
    )
    args = parser.parse_args()

    state = installed_state()
    if state == "native":
        print("detectron2 with native ops is already installed; leaving it alone")
        return
    if state == "ours":
        print(f"detectron2 {VERSION} (without native ops) is already installed")
        return
    if state == "outdated":
        print(
            f"detectron2 {VERSION} was installed by an older version of this script; replacing it"
        )

    sdist = fetch_sdist(args.cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        root = Path(tmp) / SDIST_FILE[: -len(".tar.gz")]
        patch_sources(root)
        # The egg-info that ships in the sdist names the old distribution; let setup.py remake it.
        shutil.rmtree(root / "pb1_detectron2.egg-info", ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-build-isolation", str(root)], check=True
        )
    importlib.invalidate_caches()
    for name in [name for name in sys.modules if name.split(".")[0] == "detectron2"]:
        del sys.modules[name]  # the check below must see the new install, not a replaced one
    if installed_state() != "ours":
        raise SystemExit("detectron2 was installed but does not import; see pip's output above")
    print(f"installed detectron2 {VERSION} without native ops")


if __name__ == "__main__":
    main()
