"""Stick figures with the 17 COCO joints, for pose estimation (COCO person-keypoints format).

Every image holds one figure drawn at a random pose (arm and leg angles, elbow and knee bends,
torso lean, head turn), position and scale, on a random background with a few distracting
shapes. Body parts have fixed colours (jittered in brightness), so that a small model trained
for a few minutes learns the geometry rather than a colour-invariant appearance model. The figure faces the camera, so its left side is on the image's right, as for a person
seen from the front: left and right are told apart by the figure's chirality (which side of the
torso a limb hangs from, with the head marking "up"), which is what a horizontal flip with
left/right label swapping preserves. Both sides are drawn in the same colours, since a colour
cue would contradict flip augmentation.

Joints are drawn so that each has a visible mark: eyes and nose on the face, ears on the sides
of the head, shoulders and hips at the torso's corners, elbows and knees as round joints
between two limb segments of different shades, wrists as hands and ankles as feet.

Annotations follow COCO's person-keypoints format, which MMPose's ``CocoDataset`` and
``CocoMetric`` read unchanged: ``keypoints`` as [x, y, v] * 17 (v = 2, all joints visible;
x, y in the pixel-centre coordinates of cv2, which MMPose's affine transforms use), ``bbox``
[x, y, w, h] tight around the drawn figure, ``area`` the number of pixels the figure covers (its
silhouette, as COCO's segmentation area), ``iscrowd`` 0. :func:`make_coco_keypoints` writes them
with :func:`~.coco_writer.write_coco_set` (layout, seeding and re-use there) as
``annotations/person_keypoints_<split>.json`` and PNG images, the layout of
``configs/pose/micronet-m3_synthetic-128x96.py``.
"""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from .coco_writer import CocoSet, Drawing, write_coco_set

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "draw_figure_image",
    "make_coco_keypoints",
]

COCO_KEYPOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)  # fmt: skip

# COCO's skeleton, 1-based joint indices as in the official annotation files.
COCO_SKELETON = (
    (16, 14), (14, 12), (17, 15), (15, 13), (12, 13), (6, 12), (7, 13), (6, 7), (6, 8),
    (7, 9), (8, 10), (9, 11), (2, 3), (1, 2), (1, 3), (2, 4), (3, 5), (4, 6), (5, 7),
)  # fmt: skip

_J = {name: i for i, name in enumerate(COCO_KEYPOINT_NAMES)}

# Body proportions in units of the figure's height (top of the head to the soles).
_SHOULDER_Y, _HIP_Y = -0.27, 0.0  # relative to the hip centre, y pointing down the body
_SHOULDER_HALF, _HIP_HALF = 0.10, 0.075
_HEAD_Y, _HEAD_R = -0.385, 0.062
_UPPER_ARM, _FOREARM = 0.16, 0.15
_THIGH, _SHIN = 0.23, 0.22

_SKIN = (150, 190, 235)  # BGR
_FACE_DARK = (40, 30, 30)


def _rotate(points: np.ndarray, angle: float) -> np.ndarray:
    """Rotate (N, 2) points by ``angle`` radians (image coordinates, y down)."""
    c, s = math.cos(angle), math.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _limb(start: np.ndarray, angle: float, length: float) -> np.ndarray:
    """End point of a segment of ``length`` from ``start``; angle 0 points down the body."""
    return start + length * np.array([math.sin(angle), math.cos(angle)])


def _sample_pose(rng: np.random.Generator) -> np.ndarray:
    """17 joints (x, y) in body units, hip centre at the origin, upright, facing the camera.

    The figure's left side is at +x (the image's right for a figure facing the viewer).
    """
    joints = np.zeros((17, 2))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        shoulder = np.array([sign * _SHOULDER_HALF, _SHOULDER_Y])
        hip = np.array([sign * _HIP_HALF, _HIP_Y])
        # Arms: from hanging down (0) to raised above the head (~160 deg), outwards (+).
        arm = rng.uniform(-0.35, 2.8)
        elbow_bend = rng.uniform(-0.3, 2.3)
        elbow = _limb(shoulder, sign * arm, _UPPER_ARM)
        wrist = _limb(elbow, sign * (arm + elbow_bend), _FOREARM)
        # Legs: mostly downwards, spread or lifted sideways; knees bend either way.
        leg = rng.uniform(-0.25, 0.9)
        knee_bend = rng.uniform(-1.3, 0.6)
        knee = _limb(hip, sign * leg, _THIGH)
        ankle = _limb(knee, sign * (leg + knee_bend), _SHIN)
        for name, point in (
            ("shoulder", shoulder), ("elbow", elbow), ("wrist", wrist),
            ("hip", hip), ("knee", knee), ("ankle", ankle),
        ):  # fmt: skip
            joints[_J[f"{side}_{name}"]] = point
    # Head: the face turns by up to ~35 deg (eyes and nose shift sideways, ears stay).
    turn = rng.uniform(-0.6, 0.6)
    head = np.array([0.0, _HEAD_Y])
    joints[_J["nose"]] = head + _HEAD_R * np.array([0.55 * math.sin(turn), 0.25])
    for side, sign in (("left", 1.0), ("right", -1.0)):
        eye_x = _HEAD_R * math.sin(turn + sign * 0.6)
        joints[_J[f"{side}_eye"]] = head + np.array([eye_x, -0.25 * _HEAD_R])
        joints[_J[f"{side}_ear"]] = head + np.array([sign * _HEAD_R, 0.05 * _HEAD_R])
    return joints


def _random_background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth random colour field with a few random rectangles, circles and lines."""
    corners = rng.uniform(40, 215, size=(2, 2, 3)).astype(np.float32)
    image = cv2.resize(corners, (width, height), interpolation=cv2.INTER_LINEAR)
    image += rng.normal(0.0, 6.0, size=image.shape).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(2, 6))):
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        shape = rng.integers(0, 3)
        if shape == 0:
            x1, y1 = x0 + int(rng.integers(5, width // 3)), y0 + int(rng.integers(5, height // 3))
            cv2.rectangle(image, (x0, y0), (x1, y1), color, -1)
        elif shape == 1:
            cv2.circle(image, (x0, y0), int(rng.integers(3, max(4, width // 8))), color, -1)
        else:
            x1, y1 = int(rng.integers(0, width)), int(rng.integers(0, height))
            cv2.line(image, (x0, y0), (x1, y1), color, int(rng.integers(1, 4)), cv2.LINE_AA)
    return image


def _draw(
    image: np.ndarray,
    mask: np.ndarray,
    joints: np.ndarray,
    height_px: float,
    colors: dict[str, tuple[int, int, int]],
) -> None:
    """Draw a figure whose joints are ``joints`` (17, 2) pixels, ``height_px`` tall."""
    sub = 16  # fixed-point sub-pixel precision of cv2's drawing (4 bits)

    def pt(p: np.ndarray) -> tuple[int, int]:
        # keypoints are in cv2's pixel-centre coordinates, as MMPose's transforms use them
        return int(round(p[0] * sub)), int(round(p[1] * sub))

    def line(a, b, color, thickness):
        for target, value in ((image, color), (mask, 255)):
            cv2.line(target, pt(a), pt(b), value, max(1, int(round(thickness))), cv2.LINE_AA, 4)

    def disc(c, radius, color):
        for target, value in ((image, color), (mask, 255)):
            cv2.circle(target, pt(c), max(1, int(round(radius * sub))), value, -1, cv2.LINE_AA, 4)

    limb = 0.055 * height_px
    j = {name: joints[i] for name, i in _J.items()}
    # Torso: a filled quadrilateral between shoulders and hips, then the neck.
    torso = np.array([j["left_shoulder"], j["right_shoulder"], j["right_hip"], j["left_hip"]])
    torso_pts = np.round(torso * sub).astype(np.int32)
    cv2.fillConvexPoly(image, torso_pts, colors["torso"], cv2.LINE_AA, 4)
    cv2.fillConvexPoly(mask, torso_pts, 255, cv2.LINE_AA, 4)
    neck = (j["left_shoulder"] + j["right_shoulder"]) / 2
    head = (j["left_ear"] + j["right_ear"]) / 2
    line(neck, head, _SKIN, 0.5 * limb)
    for side in ("left", "right"):
        line(j[f"{side}_hip"], j[f"{side}_knee"], colors["thigh"], 1.4 * limb)
        line(j[f"{side}_knee"], j[f"{side}_ankle"], colors["shin"], 1.1 * limb)
        disc(j[f"{side}_knee"], 0.6 * limb, colors["joint"])
        disc(j[f"{side}_ankle"], 0.55 * limb, colors["foot"])
        line(j[f"{side}_shoulder"], j[f"{side}_elbow"], colors["upper_arm"], limb)
        line(j[f"{side}_elbow"], j[f"{side}_wrist"], colors["forearm"], 0.85 * limb)
        disc(j[f"{side}_elbow"], 0.55 * limb, colors["joint"])
        disc(j[f"{side}_wrist"], 0.55 * limb, _SKIN)
        disc(j[f"{side}_shoulder"], 0.5 * limb, colors["joint"])
        disc(j[f"{side}_hip"], 0.5 * limb, colors["joint"])
    # Head with ears, eyes and nose.
    radius = _HEAD_R * height_px
    for side in ("left", "right"):
        disc(j[f"{side}_ear"], 0.3 * radius, (100, 140, 200))
    disc(head, radius, _SKIN)
    for side in ("left", "right"):
        disc(j[f"{side}_eye"], 0.16 * radius, _FACE_DARK)
    disc(j["nose"], 0.14 * radius, (60, 60, 200))


# Body-part colours (BGR), the same on both sides; each figure jitters them a little.
_PALETTE = {
    "torso": (150, 110, 70), "upper_arm": (40, 40, 200), "forearm": (40, 150, 240),
    "thigh": (170, 60, 30), "shin": (200, 180, 40), "joint": (30, 30, 30), "foot": (20, 60, 90),
}  # fmt: skip


def _random_colors(rng: np.random.Generator) -> dict[str, tuple[int, int, int]]:
    """The palette with a random brightness change of up to +-25 per channel."""
    return {
        part: tuple(int(np.clip(c + rng.integers(-25, 26), 0, 255)) for c in color)
        for part, color in _PALETTE.items()
    }


def draw_figure_image(
    rng: np.random.Generator,
    image_size: tuple[int, int] = (160, 160),
    height_range: tuple[float, float] = (0.55, 0.9),
) -> tuple[np.ndarray, dict]:
    """One image (H, W, 3) BGR uint8 with one figure, and its COCO annotation fields.

    Args:
        rng: the random generator (the only source of randomness).
        image_size: (width, height) of the image.
        height_range: the figure's height as a fraction of the image height, drawn uniformly.

    Returns:
        image, and a dict with ``keypoints`` (list of 51 numbers), ``bbox`` [x, y, w, h],
        ``area`` and ``num_keypoints``.
    """
    width, height = image_size
    image = _random_background(rng, height, width)
    mask = np.zeros((height, width), np.uint8)
    pose = _sample_pose(rng)
    pose = _rotate(pose, rng.uniform(-0.5, 0.5))  # torso lean, up to ~30 deg
    body_px = rng.uniform(*height_range) * height
    points = pose * body_px
    # Margin for the drawn thickness, then place the figure anywhere it fits.
    margin = 0.08 * body_px
    low, high = points.min(0) - margin, points.max(0) + margin
    span = high - low
    if span[0] >= width or span[1] >= height:
        scale = 0.98 * min(width / span[0], height / span[1])
        points, body_px, low, high = points * scale, body_px * scale, low * scale, high * scale
    offset = np.array(
        [rng.uniform(-low[0], width - high[0]), rng.uniform(-low[1], height - high[1])]
    )
    points = points + offset
    _draw(image, mask, points, body_px, _random_colors(rng))

    ys, xs = np.nonzero(mask > 127)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    keypoints = []
    for x, y in points:
        keypoints += [round(float(x), 2), round(float(y), 2), 2]
    ann = {
        "keypoints": keypoints,
        "num_keypoints": 17,
        "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        "area": float((mask > 127).sum()),
    }
    return image, ann


def _categories() -> list[dict]:
    return [
        {
            "id": 1,
            "name": "person",
            "supercategory": "person",
            "keypoints": list(COCO_KEYPOINT_NAMES),
            "skeleton": [list(pair) for pair in COCO_SKELETON],
        }
    ]


def make_coco_keypoints(
    root: str | Path,
    *,
    num_train: int = 400,
    num_val: int = 100,
    image_size: tuple[int, int] = (160, 160),
    seed: int = 0,
) -> CocoSet:
    """Write the set under ``root`` (or re-use the one there if made with the same settings).

    ``image_size`` is (width, height), at least 32 x 32. Raises ``ValueError`` for settings that
    cannot work and ``FileExistsError`` when ``root`` holds something else.
    """
    if min(image_size) < 32:
        raise ValueError(f"image_size (width, height) must be at least 32 x 32, got {image_size}")
    return write_coco_set(
        root, partial(_draw_person, tuple(image_size)), categories=_categories(),
        ann_prefix="person_keypoints", num_train=num_train, num_val=num_val, seed=seed,
        settings={"image_size": list(image_size), "version": 1}, image_suffix=".png",
        description="micronet_backbones generated stick figures",
    )  # fmt: skip


def _draw_person(image_size: tuple[int, int], rng: np.random.Generator) -> Drawing:
    image, ann = draw_figure_image(rng, image_size)
    return Drawing(image, [{"category_id": 1, **ann}])
