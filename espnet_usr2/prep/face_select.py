"""Which face to crop when a frame shows several: a hint, then tracking.

AVSpeech (and any corpus with more than one person in view) says *which* face speaks:
its CSV gives the face centre ``(x, y)``, normalised to 0..1, in the first frame of each
segment. ROI preparation then asks the detector for several faces per frame and keeps
one track (:func:`select_track`):

1. **acquisition**: the first frame(s) whose detections include a face close to the
   hint (its landmark box centre within one face width of it) pick that face; frames
   before it get no face (the gap filler holds the first face over them);
2. **tracking**: every later frame takes the face nearest to the last selected one, so
   the choice follows the speaker as the head moves and as the detector reorders its
   outputs; a nearest face that jumped more than ``max_jump`` face widths since the last
   selected frame is another person (the speaker was missed), so the frame gets no face.

If no face comes near the hint within ``acquire_frames`` frames (a rough hint), the
track is chosen again from the first frame, taking the face nearest to the hint whatever
its distance, so an imprecise hint never costs the clip.

Hints are read from a Kaldi-style list ``<uttid> <x> <y>`` (:func:`read_face_hints`);
utterances without a line are processed as before (one face, the detector's first).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

PathLike = Union[str, Path]
FaceHint = Tuple[float, float]  # (x, y) in 0..1 of the frame width / height


def read_face_hints(path: PathLike) -> Dict[str, FaceHint]:
    """``<uttid> <x> <y>`` lines -> {uttid: (x, y)}.

    Raises:
        ValueError: a line without two finite numbers, or an id given twice with
            different values -- a broken hint file is a setup error, better stopped at
            once than discovered as wrong crops later.
    """
    hints: Dict[str, FaceHint] = {}
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 3:
                    raise ValueError("expected '<uttid> <x> <y>'")
                x, y = float(fields[1]), float(fields[2])
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise ValueError("x and y must be finite")
            except ValueError as err:
                raise ValueError(f"{path}:{line_no}: {err}: {line.strip()!r}") from None
            if hints.get(fields[0], (x, y)) != (x, y):
                raise ValueError(f"{path}:{line_no}: {fields[0]} has two different hints")
            hints[fields[0]] = (x, y)
    return hints


def face_centre(points: np.ndarray) -> np.ndarray:
    """Centre of the landmarks' bounding box ``(2,)``.

    The box rather than the mean: MediaPipe's 468 points crowd around eyes and lips,
    which would pull a mean away from the face centre the hint describes.
    """
    return (np.nanmin(points, axis=0) + np.nanmax(points, axis=0)) / 2.0


def face_width(points: np.ndarray) -> float:
    """Width of the landmarks' bounding box (pixels), never below one pixel."""
    return max(float(np.nanmax(points[:, 0]) - np.nanmin(points[:, 0])), 1.0)


def hint_to_pixels(hint: FaceHint, width: int, height: int) -> np.ndarray:
    """Normalised ``(x, y)`` -> pixel coordinates of a ``width`` x ``height`` frame."""
    return np.array([hint[0] * width, hint[1] * height], dtype=np.float64)


def _nearest(faces: Sequence[np.ndarray], target: np.ndarray) -> Tuple[int, float]:
    """Index of the face whose centre is nearest ``target`` and that distance."""
    dists = [float(np.linalg.norm(face_centre(f) - target)) for f in faces]
    best = int(np.argmin(dists))
    return best, dists[best]


def _follow(
    per_frame: Sequence[Sequence[np.ndarray]], hint_px: np.ndarray, max_jump: float, acquire_frames: int
) -> List[Optional[np.ndarray]]:
    """One pass of acquisition + tracking (see the module docstring)."""
    out: List[Optional[np.ndarray]] = [None] * len(per_frame)
    anchor: Optional[np.ndarray] = None  # centre of the last selected face
    width = 1.0
    for t, faces in enumerate(per_frame):
        if not faces:
            continue
        if anchor is None:
            best, dist = _nearest(faces, hint_px)
            if dist > face_width(faces[best]) and t < acquire_frames:
                continue  # only other people so far: wait for the hinted face
        else:
            best, dist = _nearest(faces, anchor)
            if dist > max_jump * width:
                continue  # the speaker was missed; this is someone else
        out[t] = faces[best]
        anchor, width = face_centre(faces[best]), face_width(faces[best])
    return out


def select_track(
    per_frame: Sequence[Sequence[np.ndarray]],
    hint_px: np.ndarray,
    max_jump: float = 1.0,
    acquire_frames: int = 25,
) -> List[Optional[np.ndarray]]:
    """One face per frame out of all detections, following the hinted face.

    Args:
        per_frame: for each frame, the detected faces (each ``(K, 2)`` pixels); may be empty.
        hint_px: the hinted face centre in pixels (first frame).
        max_jump: the largest move of the face centre, in face widths, between selected
            frames; a nearest face further away is taken to be someone else.
        acquire_frames: frames during which only a face near the hint is accepted.
    Returns:
        per frame, the selected face or None (no face / only other people).
    """
    track = _follow(per_frame, hint_px, max_jump, acquire_frames)
    first = next((t for t, face in enumerate(track) if face is not None), None)
    if first is None or first >= acquire_frames:
        # Nothing near the hint in the acquisition window: the hint is rough, not wrong.
        track = _follow(per_frame, hint_px, max_jump, 0)
    return track
