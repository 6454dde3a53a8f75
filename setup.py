"""micronet_backbones: MicroNet backbones for Detectron2 and MMPose.

The repository keeps the two framework adapters in top-level folders, `detection/` and `pose/`,
which install as `micronet_backbones.detection` and `micronet_backbones.pose` (never as bare
`detection` / `pose` packages).
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent

core = [p for p in find_packages(include=["micronet_backbones", "micronet_backbones.*"])]
adapters = {
    "micronet_backbones.detection": "detection",
    "micronet_backbones.pose": "pose",
    # code shared by the OpenMMLab adapters (backbone, checkpoint compatibility, tool command line)
    "micronet_backbones.openmmlab": "openmmlab",
    "micronet_backbones.segmentation": "segmentation",
    # MMDetection adapter; not `mmdet/`, which would shadow the real mmdet package in a checkout
    "micronet_backbones.mmdetection": "mmdetection",
}


def native_kernels() -> tuple[list, dict]:
    """micronet_backbones.kernels._C, the fused C++ operators of micronet_backbones/kernels/csrc.

    Built with torch's cpp_extension when torch is importable (`make setup` runs
    `setup.py build_ext --inplace` in the venv) and MICRONET_BUILD_KERNELS is not 0; optional:
    if the compiler fails, the install goes on and micronet_backbones.kernels uses its PyTorch
    fallback.
    """
    import os

    if os.environ.get("MICRONET_BUILD_KERNELS", "1") == "0":
        return [], {}
    try:
        from torch.utils.cpp_extension import BuildExtension, CppExtension
    except ImportError:
        return [], {}
    sources = sorted(
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "micronet_backbones" / "kernels" / "csrc").glob("*.cpp")
    )
    extension = CppExtension(
        "micronet_backbones.kernels._C",
        sources,
        extra_compile_args=["-O3", "-fopenmp"],
        extra_link_args=["-fopenmp"],
        optional=True,
    )
    return [extension], {"build_ext": BuildExtension}


ext_modules, cmdclass = native_kernels()
sub_packages = [
    f"{name}.{sub}" for name, folder in adapters.items() for sub in find_packages(where=folder)
]

setup(
    name="micronet_backbones",
    version="0.1.0",
    description="MicroNet (ICCV 2021) backbones and heads for Detectron2 and MMPose",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.9",
    packages=core + list(adapters) + sub_packages,
    package_dir={name: folder for name, folder in adapters.items()},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    install_requires=["torch>=2.0", "torchvision"],
    extras_require={
        # detectron2 publishes no wheels: `make setup` installs it (tools/install/install_detectron2.py).
        "detection": ["detectron2>=0.6", "fvcore", "pycocotools"],
        # mmpose declares chumpy, which does not build on current Python: `make setup` installs
        # the pose stack with --no-deps and its real runtime needs.
        "pose": ["mmpose>=1.3", "mmcv>=2.0", "mmengine>=0.10", "mmdet>=3.0"],
        # mmseg.utils imports a tokenizer needing ftfy and regex (declared only as its extras),
        # mmseg.evaluation imports prettytable
        "segmentation": ["mmsegmentation>=1.2", "ftfy", "regex", "prettytable"],
        "export": ["onnx", "onnxruntime"],
        "test": ["pytest", "fvcore"],
    },
)
