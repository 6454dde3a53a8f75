"""Helpers of the ImageNet tooling tests: a tiny ImageNet-layout folder of generated images
(no download), and the check that a checkpoint loads into both adapters."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / "tools" / "train_imagenet.py"

# Four classes that differ by colour only: easy to separate after a few dozen SGD steps, and
# unchanged by random-resized crops and flips.
COLOURS = {
    "class_a_red": (200, 40, 40),
    "class_b_green": (40, 180, 60),
    "class_c_blue": (40, 60, 200),
    "class_d_yellow": (210, 200, 40),
}


def make_image_folder(
    root: Path,
    classes: dict[str, tuple[int, int, int]],
    train_per_class: int,
    val_per_class: int,
    size: int = 40,
    seed: int = 0,
) -> Path:
    """Write ``root/{train,val}/<class>/<i>.png`` (size x size): one flat colour per image, the
    class colour shifted by up to +-30 per channel. Flat images look the same after a
    random-resized crop, so BatchNorm statistics carry over from training to validation."""
    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for name, colour in classes.items():
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for index in range(count):
                shade = np.clip(np.array(colour) + rng.integers(-30, 31, size=3), 0, 255)
                pixels = np.broadcast_to(shade.astype(np.uint8), (size, size, 3))
                Image.fromarray(np.ascontiguousarray(pixels)).save(folder / f"{index:04d}.png")
    return root


def _backbone_weights(checkpoint_path: Path) -> dict:
    """Our checkpoint's tensors without the classifier (what a features_only model takes)."""
    state = torch.load(checkpoint_path, weights_only=True)["state_dict"]
    return {k: v for k, v in state.items() if not k.startswith("head.")}


def _assert_same_weights(loaded: dict, checkpoint_path: Path) -> None:
    expected = _backbone_weights(checkpoint_path)
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def assert_detectron2_backbone_loads(checkpoint_path: Path, arch: str) -> None:
    """The Detectron2 backbone built with ``weights=checkpoint_path`` holds the checkpoint's
    MicroNet (skips when Detectron2 or the adapter is missing)."""
    pytest.importorskip("detectron2", reason="detectron2 is not installed")
    detection = pytest.importorskip(
        "micronet_backbones.detection.backbone", reason="the Detectron2 adapter is not importable"
    )
    backbone = detection.MicroNetBackbone(
        arch, freeze_at=0, norm="BN", weights=str(checkpoint_path)
    )
    _assert_same_weights(backbone.micronet.state_dict(), checkpoint_path)


def assert_openmmlab_backbone_loads(checkpoint_path: Path, arch: str) -> None:
    """The OpenMMLab backbone (as MMPose registers it) with ``init_cfg`` Pretrained
    ``checkpoint_path`` holds the checkpoint's MicroNet (skips when MMPose is missing)."""
    pytest.importorskip("mmpose", reason="mmpose is not installed")
    pose = pytest.importorskip(
        "micronet_backbones.pose", reason="the MMPose adapter is not importable"
    )
    backbone = pose.MicroNetBackbone(
        arch=arch,
        out_strides=(4, 8, 16, 32),
        output_stride=32,
        init_cfg=dict(type="Pretrained", checkpoint=str(checkpoint_path)),
    )
    backbone.init_weights()
    _assert_same_weights(backbone.body.state_dict(), checkpoint_path)


def free_port() -> int:
    """A TCP port free on this machine now (for torchrun's rendezvous)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args: list[str]) -> str:
    """Run the tool in 2 processes with torchrun; return its output (fail with it on error)."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        str(TOOL),
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=400
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"torchrun failed ({done.returncode}):\n{output[-6000:]}"
    return output


def read_log(run_dir: Path) -> list[dict]:
    """The rows of a run's log.jsonl."""
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def epoch_lines(output: str) -> list[str]:
    """The "N/M" of every end-of-epoch line the tool printed."""
    return re.findall(r"^epoch (\d+/\d+): ", output, flags=re.MULTILINE)
