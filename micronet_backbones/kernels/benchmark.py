"""CPU latency of MicroNet (as built and in inference form) against MobileNetV3-Small, in every
runtime at hand; the code behind ``tools/benchmark.py``.

One process, fixed threads (``--threads``, default 1) for every runtime (PyTorch intra-op,
onnxruntime and OpenVINO inference threads; inter-op 1). Runtimes: eager PyTorch,
``torch.compile``, onnxruntime (exported with ``micronet_backbones.deploy.onnx_export``, checked
at export) and OpenVINO (the same ONNX file) when it is installed. After a warm-up, all
(model, runtime) pairs are timed round-robin, one call each per round, so a change of machine
load hits all of them alike; the figure is the median over ``--runs`` rounds (>= 50).
Batch 1, random weights, random inputs:

* classification at 224 x 224: MicroNet-M0 ... M3 as built, in inference form (with the native
  kernels of :mod:`micronet_backbones.kernels` when they are built) and, in eager PyTorch, the
  inference form on PyTorch ops only; torchvision's MobileNetV3-Small x0.5 and x1.0 (the
  reference: every ratio is to MobileNetV3-Small x0.5 in the same runtime, and the "fastest"
  columns compare each network in its own fastest runtime with the reference in its);
* pose at 256 x 192: the M2 and M3 top-down models of ``configs/pose`` (MicroNet backbone at
  output stride 16 + Micro-Block head), when MMPose is installed;
* training: forward + backward of MicroNet-M3 at batch 32 (``--train-runs`` rounds) with the
  core's Dynamic Shift-Max and with a straightforward index-gather Dynamic Shift-Max, and the
  memory autograd saves for backward in the M3 backbone at 2 x 3 x 800 x 1216 (a Detectron2
  batch) with the core's memory-lean Dynamic Shift-Max and with its plain op chain.

Weights are random, but every model (MobileNetV3 included) gets its BatchNorm statistics from
a few random batches in training mode before timing, as a trained network has them: with the
initial statistics MicroNet's activations shrink layer after layer to ~1e-30, where float
arithmetic turns denormal and 10-100x slower, which would time an artefact, not the network.

MAdds are fvcore's count (one multiply-add = one "flop") of the model as built.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import micronet_backbones as mb
from micronet_backbones.deploy import to_inference_form
from micronet_backbones.deploy.native_runner import layer_by_layer
from micronet_backbones.deploy.onnx_export import export_onnx, onnxruntime_session
from micronet_backbones.ops import DynamicShiftMax

from .loader import pytorch_fallback, status
from .memory import saved_tensor_bytes

__all__ = [
    "Entry",
    "IndexGatherShiftMax",
    "autograd_chain_shift_max",
    "calibrate_batchnorm",
    "main",
    "saved_memory",
    "with_index_gather",
]

REFERENCE = "mobilenet_v3_small x0.5"
RUNTIMES = ("eager", "compile", "onnxruntime", "openvino")
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Entry:
    """One model to time: its eager module and how each runtime calls it."""

    name: str
    family: str  # "micronet", "micronet fused", "mobilenet", "pose", "pose fused"
    module: nn.Module
    input_shape: tuple[int, int, int, int]
    madds: float = 0.0
    runtimes: tuple[str, ...] = RUNTIMES  # those that apply to this entry
    calls: dict[str, Callable[[torch.Tensor], object]] = field(default_factory=dict)
    times: dict[str, list[float]] = field(default_factory=dict)

    def median_ms(self, runtime: str) -> float | None:
        times = self.times.get(runtime)
        return statistics.median(times) * 1e3 if times else None

    def fastest(self) -> tuple[str, float]:
        """(runtime, ms) of this entry's fastest runtime."""
        timed = {rt: self.median_ms(rt) for rt in self.times if self.times[rt]}
        best = min(timed, key=timed.get)
        return best, timed[best]


class _LayerByLayer(nn.Module):
    """Runs an inference form layer by layer (native per-layer kernels, no whole-network
    runner): what the runner saves."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x):
        with layer_by_layer():
            return self.module(x)


class _Fallback(nn.Module):
    """Runs ``module`` with the kernels' PyTorch fallback (the inference form on PyTorch ops)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x):
        with pytorch_fallback():
            return self.module(x)


def fvcore_madds(module: nn.Module, input_shape) -> float:
    """fvcore's multiply-add count of ``module`` on one input of ``input_shape``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        logging.getLogger("fvcore").setLevel(logging.ERROR)
        analysis = FlopCountAnalysis(module, torch.zeros(input_shape))
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        return float(analysis.total())


@torch.no_grad()
def calibrate_batchnorm(
    model: nn.Module, input_shape, batches: int = 2, seed: int = 0
) -> nn.Module:
    """BatchNorm running statistics from ``batches`` random batches (cumulative average) in
    training mode, as a trained network would have; returns the model in eval mode."""
    generator = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    for _ in range(batches):
        model(torch.randn(input_shape, generator=generator))
    for bn, momentum in zip(norms, momenta):
        bn.momentum = momentum
    return model.eval()


def classification_entries(names: list[str]) -> list[Entry]:
    import torchvision

    shape = (1, 3, 224, 224)
    entries = []
    for name in names:
        model = calibrate_batchnorm(mb.create_model(name), (8, *shape[1:]))
        madds = fvcore_madds(model, shape)
        short = mb.canonical_name(name).removeprefix("micronet_").upper()
        fused = to_inference_form(model)
        entries.append(Entry(f"MicroNet-{short}", "micronet", model, shape, madds))
        entries.append(Entry(f"MicroNet-{short} fused", "micronet fused", fused, shape, madds))
        if status().backend == "native":
            entries.append(
                Entry(
                    f"MicroNet-{short} fused, layer by layer",
                    "micronet fused",
                    _LayerByLayer(fused),
                    shape,
                    madds,
                    runtimes=("eager",),
                )
            )
            entries.append(
                Entry(
                    f"MicroNet-{short} fused, PyTorch ops",
                    "micronet fused",
                    _Fallback(fused),
                    shape,
                    madds,
                    runtimes=("eager",),
                )
            )
    for width in (0.5, 1.0):
        model = calibrate_batchnorm(
            torchvision.models.mobilenet_v3_small(width_mult=width), (8, *shape[1:])
        )
        entries.append(
            Entry(
                f"mobilenet_v3_small x{width}",
                "mobilenet",
                model,
                shape,
                fvcore_madds(model, shape),
            )
        )
    return entries


def pose_entries(names: list[str]) -> tuple[list[Entry], str]:
    """Pose models (original and fused) of ``configs/pose``, or ([], why not)."""
    try:
        import mmpose  # noqa: F401

        from micronet_backbones.pose.heatmap_model import (
            COCO_CONFIGS,
            PoseHeatmaps,
            build_pose_model,
        )
    except ImportError as error:  # MMPose missing
        return [], f"pose models skipped: {error}"
    from micronet_backbones.deploy import fuse_heatmap_model

    entries, shape = [], (1, 3, 256, 192)
    for name in (n for n in names if n in COCO_CONFIGS):
        model = build_pose_model(REPO / COCO_CONFIGS[name])
        original = calibrate_batchnorm(PoseHeatmaps(model.backbone, model.head), (8, *shape[1:]))
        head = model.head
        fused = fuse_heatmap_model(
            model.backbone.body, [head.stride8, head.stride4], head.final_layer, head.align_corners
        )
        short = name.removeprefix("micronet_").upper()
        madds = fvcore_madds(original, shape)
        entries.append(Entry(f"Pose-{short}", "pose", original, shape, madds))
        entries.append(Entry(f"Pose-{short} fused", "pose fused", fused, shape, madds))
    return entries, ""


def available_runtimes(requested: list[str]) -> tuple[list[str], list[str]]:
    """(runtimes to run, notes on those left out)."""
    chosen, notes = [], []
    for runtime in requested:
        if runtime == "onnxruntime":
            try:
                import onnxruntime  # noqa: F401
            except ImportError:
                notes.append("onnxruntime not installed")
                continue
        if runtime == "openvino":
            try:
                import openvino  # noqa: F401
            except ImportError:
                notes.append("OpenVINO not installed (pip install openvino to add it)")
                continue
        chosen.append(runtime)
    return chosen, notes


def openvino_call(path: Path, threads: int) -> Callable:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(
        str(path),
        "CPU",
        {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY"},
    )
    request = compiled.create_infer_request()
    return lambda x: request.infer([x.numpy()])


def prepare(entries: list[Entry], runtimes: list[str], folder: Path, threads: int) -> None:
    """Build each entry's call per runtime (compile, export)."""
    for index, entry in enumerate(entries):
        chosen = [rt for rt in runtimes if rt in entry.runtimes]
        entry.calls["eager"] = entry.module
        if "compile" in chosen:
            entry.calls["compile"] = torch.compile(entry.module)
        if "onnxruntime" in chosen or "openvino" in chosen:
            path = folder / f"model{index}.onnx"
            export_onnx(
                entry.module, path, entry.input_shape, output_names=None, check_batch_sizes=(1,)
            )
            if "onnxruntime" in chosen:
                session = onnxruntime_session(path, threads)
                name = session.get_inputs()[0].name
                entry.calls["onnxruntime"] = lambda x, s=session, n=name: s.run(
                    None, {n: x.numpy()}
                )
            if "openvino" in chosen:
                entry.calls["openvino"] = openvino_call(path, threads)
        entry.times = {rt: [] for rt in entry.calls}


def time_all(entries: list[Entry], runs: int, warmup: int) -> list[str]:
    """Warm-up (the first compile call traces), then ``runs`` rounds of one timed call per
    (entry, runtime). A runtime that fails on an entry is left out of it; returns notes."""
    calls, notes = [], []
    for e in entries:
        x = torch.randn(e.input_shape)
        calls.extend((e, rt, call, x) for rt, call in e.calls.items())
    with torch.inference_mode():
        for item in list(calls):
            entry, runtime, call, x = item
            try:
                for _ in range(warmup):
                    call(x)
            except Exception as error:  # e.g. a compiler failure: report, time the rest
                notes.append(
                    f"{entry.name} in {runtime} failed: {type(error).__name__}: "
                    f"{str(error).splitlines()[0][:200]}"
                )
                calls.remove(item)
                del entry.times[runtime]
        for _ in range(runs):
            for entry, runtime, call, x in calls:
                start = time.perf_counter()
                call(x)
                entry.times[runtime].append(time.perf_counter() - start)
    return notes


def table(entries: list[Entry], runtimes: list[str]) -> str:
    """Markdown table: per runtime ms and ratio to the reference in that runtime; then each
    network's fastest runtime against the reference's fastest (best vs best)."""
    reference = next(e for e in entries if e.name == REFERENCE)
    ref = {rt: reference.median_ms(rt) for rt in runtimes}
    ref_best = reference.fastest()
    header = ["model", "input", "MAdds"]
    for rt in runtimes:
        header += [f"{rt} ms", f"{rt} ratio"]
    header += ["fastest runtime", "fastest ms", "fastest ratio"]
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + " |",
    ]
    for e in entries:
        cells = [e.name, f"{e.input_shape[2]}x{e.input_shape[3]}", f"{e.madds / 1e6:.1f}M"]
        for rt in runtimes:
            ms = e.median_ms(rt)
            cells += ["-", "-"] if ms is None else [f"{ms:.2f}", f"{ms / ref[rt]:.2f}"]
        best, ms = e.fastest()
        cells += [best, f"{ms:.2f}", f"{ms / ref_best[1]:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(f"\nreference's fastest runtime: {ref_best[0]} ({ref_best[1]:.2f} ms)")
    return "\n".join(lines)


def plot(entries: list[Entry], runtimes: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    styles = {
        "micronet": ("o", "tab:blue"),
        "micronet fused": ("s", "tab:green"),
        "mobilenet": ("^", "tab:red"),
        "pose": ("D", "tab:purple"),
        "pose fused": ("P", "tab:olive"),
    }
    fig, axes = plt.subplots(1, len(runtimes), figsize=(6.5 * len(runtimes), 5.5), squeeze=False)
    for ax, runtime in zip(axes[0], runtimes):
        for family, (marker, color) in styles.items():
            chosen = [e for e in entries if e.family == family and e.median_ms(runtime)]
            if not chosen:
                continue
            ax.scatter(
                [e.madds / 1e6 for e in chosen],
                [e.median_ms(runtime) for e in chosen],
                marker=marker,
                color=color,
                label=family,
            )
            for e in chosen:
                ax.annotate(
                    e.name,
                    (e.madds / 1e6, e.median_ms(runtime)),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("MAdds (millions, fvcore)")
        ax.set_ylabel("latency (ms, median, batch 1)")
        ax.set_title(f"{runtime}, {torch.get_num_threads()} thread(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


class IndexGatherShiftMax(nn.Module):
    """Baseline for the training benchmark: the same Dynamic Shift-Max (same parameters) with
    its shifts as index gathers ``x[:, index]`` and one product per term, as written plainly."""

    def __init__(self, module: DynamicShiftMax) -> None:
        super().__init__()
        self.inner = module
        c, g = module.channels, module.groups
        shifts = [
            mb.ops.group_shift(torch.arange(c).view(1, c, 1, 1), g, j).flatten()
            for j in range(module.num_shifts)
        ]
        self.register_buffer("index", torch.stack(shifts), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.inner.coefficients(x)[..., None, None]  # (N, K, J, C, 1, 1)
        out = None
        for k in range(a.shape[1]):
            fused = sum(x[:, self.index[j]] * a[:, k, j] for j in range(a.shape[2]))
            out = fused if out is None else torch.maximum(out, fused)
        return out


def with_index_gather(model: nn.Module) -> nn.Module:
    for name, module in list(model.named_modules()):
        if isinstance(module, DynamicShiftMax):
            if module.spatial is not None:
                raise TypeError("the baseline has no spatial attention")
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent), child, IndexGatherShiftMax(module))
    return model


@contextlib.contextmanager
def autograd_chain_shift_max() -> Iterator[None]:
    """Within the block, every :class:`DynamicShiftMax` runs its chain of PyTorch ops under
    autograd (which then keeps each shifted map, product and partial max for backward), as
    the core did before the memory-lean :func:`micronet_backbones.kernels.shift_max`: the
    baseline of the saved-memory comparison."""
    from micronet_backbones.ops.shift_max import shift_max

    def chain(module: DynamicShiftMax, x: torch.Tensor) -> torch.Tensor:
        out = shift_max(x, module.coefficients(x), module.groups)
        return out if module.spatial is None else out * module.spatial_weights(x)

    lean = DynamicShiftMax.forward
    DynamicShiftMax.forward = chain
    try:
        yield
    finally:
        DynamicShiftMax.forward = lean


def saved_memory(arch: str = "micronet_m3", shape=(2, 3, 800, 1216)) -> tuple[int, int]:
    """Bytes autograd saves for backward in one training forward of the ``arch`` backbone
    (``features_only``) on ``shape``: (with the core's Dynamic Shift-Max, with the chain)."""
    torch.manual_seed(0)
    model = mb.create_model(arch, features_only=True).train()
    x = torch.randn(shape)
    lean = saved_tensor_bytes(lambda: model(x))
    with autograd_chain_shift_max():
        chain = saved_tensor_bytes(lambda: model(x))
    return lean, chain


def time_training(runs: int, batch: int = 32) -> list[tuple[str, float]]:
    """Median forward + backward seconds of MicroNet-M3 at ``batch`` (core vs index gather)."""
    torch.manual_seed(0)
    core = mb.create_model("micronet_m3").train()
    gather = with_index_gather(copy.deepcopy(core))  # same weights
    x = torch.randn(batch, 3, 224, 224)
    target = torch.randint(0, 1000, (batch,))
    results = {"core Dynamic Shift-Max": [], "index-gather Dynamic Shift-Max": []}
    models = {"core Dynamic Shift-Max": core, "index-gather Dynamic Shift-Max": gather}

    def step(model):
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), target).backward()

    for model in models.values():
        step(model)  # warm-up
    for _ in range(runs):
        for name, model in models.items():
            start = time.perf_counter()
            step(model)
            results[name].append(time.perf_counter() - start)
    return [(name, statistics.median(t)) for name, t in results.items()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=50, help="timed rounds (median; >= 50)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=mb.list_models())
    parser.add_argument(
        "--runtimes",
        nargs="*",
        default=list(RUNTIMES),
        choices=RUNTIMES,
        help="runtimes to time (those not installed are left out)",
    )
    parser.add_argument("--no-pose", action="store_true", help="skip the pose models")
    parser.add_argument(
        "--train-runs",
        type=int,
        default=3,
        help="rounds of the M3 training step, batch 32 (0: skip)",
    )
    parser.add_argument(
        "--no-memory",
        action="store_true",
        help="skip the saved-for-backward memory of the M3 backbone at 2x3x800x1216",
    )
    parser.add_argument("--plot", default="output/benchmark.png")
    parser.add_argument("--allow-few-runs", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.runs < 50 and not args.allow_few_runs:
        print("error: --runs must be at least 50", file=sys.stderr)
        return 2
    if "eager" not in args.runtimes:
        args.runtimes.insert(0, "eager")
    started = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    runtimes, notes = available_runtimes(args.runtimes)
    kernels = status()
    load_before = os.getloadavg()
    phases = {}
    tick = time.perf_counter()
    entries = classification_entries(args.models)
    if args.no_pose:
        notes.append("pose models skipped (--no-pose)")
    else:
        pose, note = pose_entries([mb.canonical_name(m) for m in args.models])
        entries += pose
        if note:
            notes.append(note)
    with tempfile.TemporaryDirectory() as folder:
        prepare(entries, runtimes, Path(folder), args.threads)
        phases["build + export"], tick = time.perf_counter() - tick, time.perf_counter()
        notes += time_all(entries, args.runs, args.warmup)
        phases["latency"], tick = time.perf_counter() - tick, time.perf_counter()
    training = time_training(args.train_runs) if args.train_runs > 0 else []
    memory = None if args.no_memory else saved_memory()
    phases["training"] = time.perf_counter() - tick
    load_after = os.getloadavg()

    print(
        f"# MicroNet CPU benchmark: batch 1, {args.threads} thread(s), median of {args.runs} "
        f"round-robin runs after {args.warmup} warm-up calls"
    )
    versions = [f"torch {torch.__version__}"]
    for name in ("onnxruntime", "openvino"):
        if name in runtimes:
            versions.append(f"{name} {__import__(name).__version__}")
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"{', '.join(versions)}; micronet kernels: {kernels.backend} ({kernels.reason}); "
        f"load average (1/5/15 min) before {load_before[0]:.2f}/{load_before[1]:.2f}/"
        f"{load_before[2]:.2f}, after {load_after[0]:.2f}/{load_after[1]:.2f}/"
        f"{load_after[2]:.2f}"
    )
    for note in notes:
        print(f"# {note}")
    print(table(entries, runtimes))
    if training:
        baseline = training[1][1]
        print(
            f"\n# training step of MicroNet-M3, batch 32, 224x224, forward + backward, median "
            f"of {args.train_runs}"
        )
        print("| Dynamic Shift-Max | seconds | ratio to index gather |")
        print("| --- | ---: | ---: |")
        for name, seconds in training:
            print(f"| {name} | {seconds:.3f} | {seconds / baseline:.2f} |")
    if memory:
        lean, chain = (b / 2**20 for b in memory)
        print(
            f"\n# saved for backward, MicroNet-M3 backbone, 2x3x800x1216 (distinct storages "
            f"autograd keeps): {lean:.0f} MiB with the core's Dynamic Shift-Max, {chain:.0f} "
            f"MiB with its op chain ({1 - lean / chain:.1%} less)"
        )
    if args.plot:
        plot(entries, runtimes, Path(args.plot))
        print(f"\nplot: {args.plot}")
    print(
        f"total time {time.perf_counter() - started:.0f} s ("
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in phases.items())
        + ")"
    )
    return 0
