"""The command line of ``tools/export_detector.py``: Detectron2's ``export_model.py`` flags for
its ``tracing`` method, the export, the check against Detectron2's inference and the benchmark.

Kept in the package (not in the script) so that tests and other code import it; the script is a
thin ``main``. What the exported model takes and returns: :mod:`.export`.
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch

from .export import (
    check_exported,
    export_onnx,
    export_torchscript,
    load_detector,
    load_exported,
    preprocess,
    tracing_adapter,
)
from .training import build_config

EXPORTERS = {"torchscript": export_torchscript, "onnx": export_onnx}
DESCRIPTION = "Export a trained MicroNet detector (Faster R-CNN, RetinaNet) to TorchScript or ONNX."


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument(
        "--export-method",
        choices=["tracing"],
        default="tracing",
        help="how the model is serialised (Detectron2's tracing)",
    )
    parser.add_argument("--format", choices=sorted(EXPORTERS), default="torchscript")
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--sample-image",
        required=True,
        metavar="FILE",
        help="an image the export is traced (and checked) on",
    )
    parser.add_argument("--output", required=True, help="output folder")
    parser.add_argument(
        "--as-built",
        action="store_true",
        help="export the MicroNet backbone as trained, not in inference form",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip running the exported model against Detectron2's inference",
    )
    parser.add_argument(
        "--benchmark",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="time the detector as built and in inference form (0: no)",
    )
    parser.add_argument(
        "opts",
        nargs=argparse.REMAINDER,
        help="config overrides KEY VALUE ..., e.g. MODEL.WEIGHTS model_final.pth",
    )
    return parser


def read_image(path: str):
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read the sample image {path!r}")
    return image


def benchmark(cfg, inputs: dict, fmt: str, rounds: int) -> dict[str, float]:
    """Median latency (ms) of the whole detector, as built and in inference form, eager and
    exported to ``fmt``; all four timed round-robin in this process, 1 thread."""
    torch.set_num_threads(1)
    image = inputs["image"]
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        for form, inference_form in (("as built", False), ("inference form", True)):
            model = load_detector(cfg, inference_form=inference_form)
            path = EXPORTERS[fmt](tracing_adapter(model, image), image, Path(tmp) / form)
            runs[f"eager, {form}"] = functools.partial(model, [inputs])
            runs[f"{fmt}, {form}"] = functools.partial(load_exported(path), image)
        times = {name: [] for name in runs}
        with torch.no_grad():
            for _ in range(3):  # warm-up
                for run in runs.values():
                    run()
            for _ in range(rounds):
                for name, run in runs.items():
                    start = time.perf_counter()
                    run()
                    times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) * 1e3 for name, t in times.items()}


def main(argv=None) -> Path:
    args = argument_parser().parse_args(argv)
    cfg = build_config(args)
    model = load_detector(cfg, inference_form=not args.as_built)
    inputs = preprocess(cfg, read_image(args.sample_image))
    adapter = tracing_adapter(model, inputs["image"])
    path = EXPORTERS[args.format](adapter, inputs["image"], args.output)
    print(f"wrote {path}")
    print(f"inputs: image (3, H, W) float32, {cfg.INPUT.FORMAT}, resized as INPUT.*_SIZE_TEST")
    print(f"outputs schema: {adapter.outputs_schema}")
    if not args.no_check:
        reference = load_detector(cfg, inference_form=False)
        report = check_exported(reference, load_exported(path), inputs)
        print(f"checked against Detectron2's inference on the sample image: {report}")
    if args.benchmark:
        medians = benchmark(cfg, inputs, args.format, args.benchmark)
        h, w = inputs["image"].shape[1:]
        print(f"latency, whole detector, {h}x{w} input, 1 thread, median of {args.benchmark}:")
        for name, ms in medians.items():
            print(f"  {name:28s} {ms:8.2f} ms")
        for runtime in ("eager", args.format):
            ratio = medians[f"{runtime}, as built"] / medians[f"{runtime}, inference form"]
            print(f"  {runtime}: as built / inference form = {ratio:.2f}")
    return path
