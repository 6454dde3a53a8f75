"""Generated data sets in COCO format, made on the spot (no download), for tests and quick-starts.

One writer (:mod:`.coco_writer`: split layout, seeding, re-use, return type) with task-specific
drawing on top:

* :mod:`.shapes`: squares, circles and triangles on varied backgrounds, for detection
  (:func:`make_shapes_dataset`);
* :mod:`.figures`: stick figures with the 17 COCO joints, for pose estimation
  (:func:`make_coco_keypoints`);
* :mod:`.segmentation_scenes`: shapes of four classes on textured backgrounds with a label map
  per image, for semantic segmentation (``make_segmentation_scenes``).

Drawing and writing use OpenCV (``pip install opencv-python-headless``), which the core does not
otherwise need; the core's model code never imports this package.
"""

try:
    import cv2  # noqa: F401
except ImportError as error:  # pragma: no cover - the full stack always has OpenCV
    raise ImportError(
        "micronet_backbones.synthetic draws and writes images with OpenCV, which is not "
        "installed: pip install opencv-python-headless"
    ) from error

from .coco_writer import SPLITS, CocoSet, CocoSplit, Drawing, split_rng, write_coco_set
from .figures import COCO_KEYPOINT_NAMES, COCO_SKELETON, draw_figure_image, make_coco_keypoints
from .shapes import CATEGORIES as SHAPE_CATEGORIES
from .shapes import make_shapes_dataset

__all__ = [
    "COCO_KEYPOINT_NAMES",
    "COCO_SKELETON",
    "SHAPE_CATEGORIES",
    "SPLITS",
    "CocoSet",
    "CocoSplit",
    "Drawing",
    "draw_figure_image",
    "make_coco_keypoints",
    "make_shapes_dataset",
    "split_rng",
    "write_coco_set",
]
