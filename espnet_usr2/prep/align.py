"""Landmark clean-up and the mouth-crop geometry.

The steps, all vectorised over the frames of a clip:

1. :func:`fill_gaps` -- frames without a face get landmarks interpolated linearly from
   their neighbours (held at the clip ends), as long as the gap is short.
2. :func:`smooth` -- a centred moving average over time removes detector jitter
   without the lag of a causal filter.
3. :func:`fit_similarity` -- per frame, the least-squares similarity (rotation, uniform
   scale, translation) taking the stable points onto the canonical face.
4. :func:`crop_transforms` -- compose it with the translation that centres the mouth in
   the output crop, giving one 2x3 affine per frame from source pixels to crop pixels,
   so a single ``cv2.warpAffine`` per frame produces the 96x96 crop directly.
"""

from __future__ import annotations

from typing import List, Tuple

import numpy as np

from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.landmark_sets import CANONICAL_STABLE_POINTS, LandmarkSet
from espnet_usr2.prep.roi_errors import SkipUtterance


def missing_runs(valid: np.ndarray) -> List[Tuple[int, int]]:
    """Half-open ``(start, end)`` index ranges where ``valid`` is False."""
    padded = np.concatenate([[True], valid.astype(bool), [True]])
    change = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(change[0::2].tolist(), change[1::2].tolist()))


def fill_gaps(landmarks: np.ndarray, max_gap: int) -> np.ndarray:
    """Fill frames without a face (NaN rows) from their neighbours.

    Interior gaps are interpolated linearly between the faces on either side; a gap at
    the start or end copies the nearest face. Raises ``no_face`` when no frame has a face
    and ``face_gap_too_long`` when a gap is longer than ``max_gap`` frames (the mouth
    cannot be guessed over, e.g., a cut to another shot).
    """
    valid = ~np.isnan(landmarks).any(axis=(1, 2))
    if not valid.any():
        raise SkipUtterance(E.NO_FACE, f"no face in any of {len(landmarks)} frames")
    runs = missing_runs(valid)
    longest = max((end - start for start, end in runs), default=0)
    if longest > max_gap:
        start, end = next((s, e) for s, e in runs if e - s == longest)
        raise SkipUtterance(
            E.FACE_GAP_TOO_LONG,
            f"no face in frames {start}-{end - 1} ({longest} frames > max_gap {max_gap}); "
            f"face found in {int(valid.sum())}/{len(valid)} frames",
        )
    if not runs:
        return landmarks.copy()
    frames = np.arange(len(landmarks))
    flat = landmarks.reshape(len(landmarks), -1)
    # np.interp holds the end values outside the known range: exactly the edge rule.
    filled = np.stack([np.interp(frames, frames[valid], flat[valid, j]) for j in range(flat.shape[1])], axis=1)
    return filled.reshape(landmarks.shape)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over axis 0 (an even ``window`` acts as ``window + 1``).

    Near the clip edges the window shrinks symmetrically (frame 0 is left as it is):
    an average that is always centred cannot lag behind a moving head, while a
    one-sided edge window would pull the first and last frames towards the middle.
    """
    if window <= 1 or len(values) <= 2:
        return values.astype(np.float64, copy=True)
    n = len(values)
    flat = values.reshape(n, -1).astype(np.float64)
    cumsum = np.concatenate([np.zeros((1, flat.shape[1])), np.cumsum(flat, axis=0)])
    idx = np.arange(n)
    half = np.minimum(np.minimum(idx, n - 1 - idx), window // 2)
    lo, hi = idx - half, idx + half + 1
    out = (cumsum[hi] - cumsum[lo]) / (hi - lo)[:, None]
    return out.reshape(values.shape)


def fit_similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms taking ``src`` onto ``dst``, per frame.

    Args:
        src: (T, N, 2) points per frame.
        dst: (N, 2) target points (the same for every frame).
    Returns:
        (T, 2, 3) affine matrices ``[[a, -b, tx], [b, a, ty]]``.

    The closed form: with centred points p (src) and q (dst), the complex ratio
    ``sum(conj(p) q) / sum(|p|^2)`` is ``a + ib`` (scale times rotation).
    """
    src_mean = src.mean(axis=1, keepdims=True)
    dst_mean = dst.mean(axis=0, keepdims=True)
    p = src - src_mean
    q = (dst - dst_mean)[None]
    norm = (p**2).sum(axis=(1, 2))
    if np.any(norm <= 1e-9):
        raise SkipUtterance(E.NO_FACE, "degenerate landmarks (all stable points coincide)")
    a = (p[..., 0] * q[..., 0] + p[..., 1] * q[..., 1]).sum(axis=1) / norm
    b = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(axis=1) / norm
    linear = np.stack([np.stack([a, -b], axis=1), np.stack([b, a], axis=1)], axis=1)  # (T, 2, 2)
    translation = dst_mean[0][None] - np.einsum("tij,tj->ti", linear, src_mean[:, 0])
    return np.concatenate([linear, translation[..., None]], axis=2)


def apply_affine(matrices: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(T, 2, 3) matrices applied to (T, N, 2) points."""
    return np.einsum("tij,tnj->tni", matrices[..., :2], points) + matrices[:, None, :, 2]


def crop_transforms(
    landmarks: np.ndarray,
    landmark_set: LandmarkSet,
    crop_size: int,
    eye_span_px: float,
    center_window: int,
) -> np.ndarray:
    """Per-frame affines from source pixels to the ``crop_size`` square around the mouth.

    The canonical face is scaled so the outer eye corners are ``eye_span_px`` apart in
    the crop. The crop centre is the mouth centre in canonical coordinates, smoothed
    over ``center_window`` frames: after alignment the mouth centre moves only with the
    jaw, and following that motion frame by frame would shake the crop and hide the very
    movement lip reading needs.
    """
    canonical = CANONICAL_STABLE_POINTS * eye_span_px
    to_canonical = fit_similarity(landmark_set.stable_points(landmarks), canonical)
    mouth = apply_affine(to_canonical, landmark_set.mouth_points(landmarks)).mean(axis=1)  # (T, 2)
    center = smooth(mouth, center_window)
    shift = crop_size / 2.0 - center  # move the mouth centre to the crop centre
    out = to_canonical.copy()
    out[:, :, 2] += shift
    return out


def warp_crop(image: np.ndarray, matrix: np.ndarray, crop_size: int) -> np.ndarray:
    """Cut one ``crop_size`` x ``crop_size`` crop out of a frame with a 2x3 affine."""
    import cv2

    return cv2.warpAffine(
        image,
        matrix.astype(np.float64),
        (crop_size, crop_size),
        flags=cv2.INTER_LINEAR,
        # Replicating the border avoids a hard black edge when the mouth is near the frame edge.
        borderMode=cv2.BORDER_REPLICATE,
    )
