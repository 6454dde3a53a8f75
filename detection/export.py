"""Export a trained MicroNet detector the way Detectron2 does: ``TracingAdapter`` + tracing.

Detectron2's models take and return rich structures (a list of dicts with an ``Instances``);
``detectron2.export.TracingAdapter`` flattens them so ``torch.jit.trace`` can record the whole
detector (preprocessing inside the model: normalisation and padding to
``size_divisibility``; then backbone, FPN, proposals / dense head, box decoding, NMS). The
recorded graph is saved as TorchScript or ONNX. This module holds the pieces
``tools/export_detector.py`` runs, for ``GeneralizedRCNN`` (Faster R-CNN) and ``RetinaNet``:

* :func:`load_detector`: the model of a config, its ``MODEL.WEIGHTS`` loaded, eval mode, with
  every MicroNet backbone in the core's exact inference form (:func:`use_inference_form`);
* :func:`preprocess`: one image as ``DefaultPredictor`` feeds it (resize by
  ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``, ``INPUT.FORMAT`` channel order);
* :func:`tracing_adapter`, :func:`export_torchscript`, :func:`export_onnx`;
* :func:`load_exported`, :func:`exported_instances`: run a saved model; its outputs back to
  Detectron2's result; :func:`check_exported` compares that with Detectron2's own inference.

The exported model takes one image tensor ``(3, H, W)`` float32, already resized (what
:func:`preprocess` returns as ``"image"``; any H, W) and returns four tensors, in
``OUTPUT_NAMES`` order: ``boxes`` (R, 4) float32 (x0, y0, x1, y1) in the coordinates of that
resized image, ``classes`` (R,) int64, ``scores`` (R,) float32 (sorted descending per
Detectron2's NMS), ``image_size`` (2,) int64 (H, W). Scaling the boxes to the original image
(``detector_postprocess``) is left to the caller, as in Detectron2's own export example; with
it the results equal ``model([{"image", "height", "width"}])``'s.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import detectron2.data.transforms as T
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.export import TracingAdapter, dump_torchscript_IR
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import GeneralizedRCNN, RetinaNet, build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances
from torch import nn

from micronet_backbones.deploy import InferenceMicroNet, to_inference_form
from micronet_backbones.deploy.onnx_export import ExportCheckError, onnxruntime_session

from .backbone import MicroNetBackbone

__all__ = [
    "OUTPUT_NAMES",
    "check_exported",
    "exported_instances",
    "export_onnx",
    "export_torchscript",
    "load_detector",
    "load_exported",
    "preprocess",
    "tracing_adapter",
    "use_inference_form",
]

# The flattened Instances of TracingAdapter: fields in sorted order, then the image size.
OUTPUT_NAMES = ("boxes", "classes", "scores", "image_size")
_FIELDS = ("pred_boxes", "pred_classes", "scores")


def _batchnorm_like(frozen: FrozenBatchNorm2d) -> nn.BatchNorm2d:
    """An eval-mode ``BatchNorm2d`` computing what ``frozen`` does (same statistics, eps)."""
    bn = nn.BatchNorm2d(frozen.num_features, eps=frozen.eps).eval()
    with torch.no_grad():
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(bn, name).copy_(getattr(frozen, name))
    return bn


def _unfreeze_norms(module: nn.Module) -> nn.Module:
    """Detectron2's ``FrozenBatchNorm2d`` (frozen stages, ``NORM: FrozenBN``) replaced by
    equivalent eval-mode ``BatchNorm2d``s, which the core's inference form folds."""
    if isinstance(module, FrozenBatchNorm2d):
        return _batchnorm_like(module)
    for name, child in module.named_children():
        setattr(module, name, _unfreeze_norms(child))
    return module


def use_inference_form(model: nn.Module) -> int:
    """Put every :class:`MicroNetBackbone` in ``model`` into the core's inference form, in place.

    Exact: outputs change by float rounding only (the inference form folds the same BN
    statistics ``model.eval()`` uses). The core stem is kept as it is: the fused stem's
    per-column border correction is a constant of the input width, so a traced graph with it
    would hold for one width only, while Detectron2's tracing exports take any resolution; the
    stem is a small share of the backbone's work. Returns how many backbones were converted
    (0: no MicroNet in ``model``).
    """
    converted = 0
    for module in model.modules():
        if isinstance(module, MicroNetBackbone) and not isinstance(
            module.micronet, InferenceMicroNet
        ):
            micronet = _unfreeze_norms(module.micronet).eval()
            fast = to_inference_form(micronet)
            fast.stem = micronet.stem
            module.micronet = fast
            converted += 1
    return converted


def load_detector(cfg, *, inference_form: bool = True) -> nn.Module:
    """The detector of ``cfg`` with ``cfg.MODEL.WEIGHTS`` loaded, in eval mode; its MicroNet
    backbone in inference form unless ``inference_form=False``. Only GeneralizedRCNN and
    RetinaNet meta-architectures are exported here."""
    model = build_model(cfg)
    if not isinstance(model, (GeneralizedRCNN, RetinaNet)):
        raise TypeError(
            f"export supports GeneralizedRCNN and RetinaNet, got MODEL.META_ARCHITECTURE "
            f"{cfg.MODEL.META_ARCHITECTURE!r}"
        )
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("MODEL.WEIGHTS is empty: give the trained detector's checkpoint")
    if not Path(cfg.MODEL.WEIGHTS).is_file() and "://" not in cfg.MODEL.WEIGHTS:
        raise FileNotFoundError(f"MODEL.WEIGHTS {cfg.MODEL.WEIGHTS!r} does not exist")
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    model.eval()
    if inference_form:
        use_inference_form(model)
    return model


def preprocess(cfg, image: np.ndarray) -> dict:
    """One image (H, W, 3) uint8 in BGR (``cv2.imread``'s order) -> Detectron2's input dict.

    As ``DefaultPredictor``: channels flipped when ``INPUT.FORMAT`` is "RGB", resized by
    ``ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST)``. Returns ``{"image": (3, H', W')
    float32, "height": H, "width": W}``.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) BGR image, got shape {image.shape}")
    if cfg.INPUT.FORMAT == "RGB":
        image = image[:, :, ::-1]
    height, width = image.shape[:2]
    resize = T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST] * 2, cfg.INPUT.MAX_SIZE_TEST)
    resized = resize.get_transform(image).apply_image(image)
    tensor = torch.as_tensor(np.ascontiguousarray(resized.astype("float32").transpose(2, 0, 1)))
    return {"image": tensor, "height": height, "width": width}


def _rcnn_inference(model, inputs):
    # Instances in the resized image's coordinates (no detector_postprocess), as Detectron2's
    # export example does; RetinaNet's forward postprocesses to that same size (a no-op).
    return [{"instances": model.inference(inputs, do_postprocess=False)[0]}]


def tracing_adapter(model: nn.Module, image: torch.Tensor) -> TracingAdapter:
    """``TracingAdapter`` of ``model`` called on one image (3, H, W); it maps the image to the
    four tensors of ``OUTPUT_NAMES``."""
    inference = _rcnn_inference if isinstance(model, GeneralizedRCNN) else None
    adapter = TracingAdapter(model, [{"image": image}], inference)
    adapter.eval()
    return adapter


def export_torchscript(adapter: TracingAdapter, image: torch.Tensor, output_dir) -> Path:
    """Trace ``adapter`` on ``image`` and save ``model.ts`` (plus Detectron2's IR dumps) into
    ``output_dir``. The traced model takes images of any size (Detectron2's tracing support)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(adapter, (image,), check_trace=False)
    path = output_dir / "model.ts"
    torch.jit.save(traced, str(path))
    dump_torchscript_IR(traced, str(output_dir))
    return path


def export_onnx(adapter: TracingAdapter, image: torch.Tensor, output_dir, opset: int = 17) -> Path:
    """Trace ``adapter`` on ``image`` into ``output_dir/model.onnx`` (TorchScript-based
    exporter). Input ``image`` (3, H, W) with H and W dynamic; outputs ``OUTPUT_NAMES`` with a
    dynamic number of detections."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "model.onnx"
    dynamic_axes = {
        "image": {1: "height", 2: "width"},
        **{n: {0: "detections"} for n in OUTPUT_NAMES[:3]},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*")
        torch.onnx.export(
            adapter,
            (image,),
            os.fspath(path),
            input_names=["image"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            dynamo=False,
        )
    return path


def exported_instances(outputs, height: int, width: int) -> Instances:
    """An exported model's outputs (``OUTPUT_NAMES`` order; tensors or numpy arrays) as the
    ``Instances`` Detectron2's model returns for an image of the original ``height`` x
    ``width``: boxes scaled from the resized image and clipped (``detector_postprocess``)."""
    # Copies: detector_postprocess scales the boxes in place.
    boxes, classes, scores, image_size = (torch.tensor(np.asarray(o)) for o in outputs)
    result = Instances(tuple(int(s) for s in image_size))
    result.pred_boxes = Boxes(boxes)
    result.scores = scores
    result.pred_classes = classes
    return detector_postprocess(result, height, width)


def load_exported(path, threads: int | None = None):
    """A saved ``model.ts`` or ``model.onnx`` as a function: image (3, H, W) float32 tensor ->
    tuple of the ``OUTPUT_NAMES`` tensors. ONNX runs in onnxruntime (``threads`` intra-op
    threads, default 1); TorchScript in PyTorch."""
    path = Path(path)
    if path.suffix == ".onnx":
        session = onnxruntime_session(path, threads or 1)

        def run_onnx(image: torch.Tensor):
            outputs = session.run(list(OUTPUT_NAMES), {"image": image.numpy()})
            return tuple(torch.from_numpy(o) for o in outputs)

        return run_onnx
    module = torch.jit.load(str(path)).eval()

    def run_torchscript(image: torch.Tensor):
        with torch.no_grad():
            return tuple(module(image))

    return run_torchscript


@torch.no_grad()
def check_exported(model: nn.Module, run, inputs: dict, tolerance: float = 1e-4) -> str:
    """Raise :class:`ExportCheckError` unless ``run`` (see :func:`load_exported`) on
    ``inputs["image"]`` gives Detectron2's result of ``model([inputs])``: the same number of
    detections and classes, boxes and scores within ``tolerance`` (relative to the largest box
    coordinate / score). Returns a one-line summary."""
    expected = model([inputs])[0]["instances"]
    actual = exported_instances(run(inputs["image"]), inputs["height"], inputs["width"])
    if len(actual) != len(expected):
        raise ExportCheckError(
            f"{len(actual)} detections exported, Detectron2 gives {len(expected)}"
        )
    if not torch.equal(actual.pred_classes, expected.pred_classes):
        raise ExportCheckError("the exported model's classes differ from Detectron2's")
    errors = {}
    for name, a, e in (
        ("boxes", actual.pred_boxes.tensor, expected.pred_boxes.tensor),
        ("scores", actual.scores, expected.scores),
    ):
        scale = e.abs().max().item() if e.numel() else 1.0
        errors[name] = (a - e).abs().max().item() / scale if e.numel() else 0.0
        if not errors[name] <= tolerance:
            raise ExportCheckError(
                f"{name} differ from Detectron2's: relative error {errors[name]:.3g}"
            )
    return (
        f"{len(actual)} detections, same classes, relative error boxes {errors['boxes']:.2g}, "
        f"scores {errors['scores']:.2g} (tolerance {tolerance})"
    )
