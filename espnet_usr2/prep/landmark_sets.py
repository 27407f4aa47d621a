"""Landmark layouts (iBUG-68 and MediaPipe face mesh) behind one interface.

The ROI pipeline never indexes raw landmark arrays itself. It asks a :class:`LandmarkSet`
for two things:

* **stable points** -- a fixed, ordered list of *semantic* points (outer/inner eye
  corners, subnasale) that barely move while a person speaks. A similarity transform
  fitted on them removes head position, scale and in-plane rotation.
* **mouth points** -- the outer lip contour; its centre positions the crop.

Because stable points are semantic, both layouts align to the same canonical face
(:data:`CANONICAL_STABLE_POINTS`), so crops made from iBUG-68 landmarks (the public
LRS2/LRS3 releases) and from MediaPipe landmarks (our detector) look alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import numpy as np

#: Semantic stable points, in the order used everywhere (fitting, canonical face).
#: "image_left" is the side of the face that appears on the left of an un-mirrored
#: frame (the subject's right).
STABLE_POINT_NAMES: Tuple[str, ...] = (
    "image_left_eye_outer",
    "image_left_eye_inner",
    "image_right_eye_inner",
    "image_right_eye_outer",
    "subnasale",
)

#: Canonical ("mean") face for the stable points, defined here from anthropometric
#: proportions rather than taken from any dataset: x to the right, y down, in units of
#: the distance between the two outer eye corners, origin midway between them.
#: Inner eye corners sit ~0.36 of the biocular width apart and a little lower than the
#: outer ones (positive canthal tilt); the nose base lies ~0.5 below the eye line.
CANONICAL_STABLE_POINTS = np.array(
    [
        [-0.50, -0.02],
        [-0.18, 0.02],
        [0.18, 0.02],
        [0.50, -0.02],
        [0.00, 0.50],
    ],
    dtype=np.float64,
)


@dataclass(frozen=True)
class LandmarkSet:
    """Where the semantic points live in one landmark layout.

    Attributes:
        name: layout name (``ibug68`` or ``mediapipe468``).
        num_points: number of points in one frame of this layout.
        stable: for each name of :data:`STABLE_POINT_NAMES`, the indices whose mean is
            that point (a single index for both layouts we ship, but a mean allows
            layouts without an exact counterpart).
        mouth: indices of the outer lip contour.
    """

    name: str
    num_points: int
    stable: Dict[str, Tuple[int, ...]]
    mouth: Tuple[int, ...]

    def __post_init__(self) -> None:
        missing = [n for n in STABLE_POINT_NAMES if n not in self.stable]
        if missing:
            raise ValueError(f"landmark set {self.name}: no stable point(s) {missing}")
        used = [i for ids in self.stable.values() for i in ids] + list(self.mouth)
        if min(used) < 0 or max(used) >= self.num_points:
            raise ValueError(f"landmark set {self.name}: index out of range 0..{self.num_points - 1}")

    def stable_points(self, landmarks: np.ndarray) -> np.ndarray:
        """(..., num_points, 2) landmarks -> (..., len(STABLE_POINT_NAMES), 2)."""
        return np.stack([landmarks[..., list(self.stable[n]), :].mean(axis=-2) for n in STABLE_POINT_NAMES], axis=-2)

    def mouth_points(self, landmarks: np.ndarray) -> np.ndarray:
        """(..., num_points, 2) landmarks -> (..., len(mouth), 2)."""
        return landmarks[..., list(self.mouth), :]


# iBUG 300-W 68-point markup, 0-based: 36-41 image-left eye (36 outer, 39 inner),
# 42-47 image-right eye (42 inner, 45 outer), 33 nose base centre, 48-59 outer lips.
IBUG68 = LandmarkSet(
    name="ibug68",
    num_points=68,
    stable={
        "image_left_eye_outer": (36,),
        "image_left_eye_inner": (39,),
        "image_right_eye_inner": (42,),
        "image_right_eye_outer": (45,),
        "subnasale": (33,),
    },
    mouth=tuple(range(48, 60)),
)

# MediaPipe face mesh topology (canonical_face_model): 33/133 image-left eye outer/inner
# corner, 362/263 image-right eye inner/outer corner, 2 the point just under the nose
# tip, and the outer lip ring from corner 61 over the upper lip to corner 291 and back
# along the lower lip.
MEDIAPIPE468 = LandmarkSet(
    name="mediapipe468",
    num_points=468,
    stable={
        "image_left_eye_outer": (33,),
        "image_left_eye_inner": (133,),
        "image_right_eye_inner": (362,),
        "image_right_eye_outer": (263,),
        "subnasale": (2,),
    },
    mouth=(61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146),
)

LANDMARK_SETS: Dict[str, LandmarkSet] = {s.name: s for s in (IBUG68, MEDIAPIPE468)}


def landmark_set_for(num_points: int) -> LandmarkSet:
    """Pick the layout from the number of points per frame.

    478 points is MediaPipe with iris refinement: the first 468 are the plain mesh, so the
    same indices apply.
    """
    if num_points == 68:
        return IBUG68
    if num_points in (468, 478):
        return MEDIAPIPE468
    raise ValueError(f"unknown landmark layout with {num_points} points (expected 68, 468 or 478)")
