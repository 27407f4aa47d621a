"""Mouth-ROI extraction on a jittered real face: size, frame count, stability, landmark files."""

import numpy as np
import pytest

from espnet_usr2.prep.landmark_sets import MEDIAPIPE468
from espnet_usr2.prep.landmarks import MediaPipeFaceMesh, load_landmarks, save_landmarks_pickle
from espnet_usr2.prep.roi_pipeline import RoiConfig, extract_roi
from espnet_usr2.testing.roi_synth import PHOTO_FACE_CENTER, jitter_transforms, make_clip, render_frames

# Points of the astronaut photo (pixels): mouth, eyes, chin, between nose and mouth.
PHOTO_POINTS = np.array([[222.0, 143.0], [195.0, 103.0], [250.0, 104.0], [222.0, 175.0], [222.0, 125.0]])
# iBUG-68 index <- MediaPipe index, for the points the aligner uses.
IBUG_FROM_MEDIAPIPE = {
    36: 33,
    39: 133,
    42: 362,
    45: 263,
    33: 2,
    48: 61,
    49: 40,
    50: 37,
    51: 0,
    52: 267,
    53: 270,
    54: 291,
    55: 321,
    56: 314,
    57: 17,
    58: 84,
    59: 91,
}


def _homogeneous(m: np.ndarray) -> np.ndarray:
    return np.concatenate([m, np.tile([[0.0, 0.0, 1.0]], (len(m), 1, 1))], axis=1)


def _photo_to_crop(result, clip) -> np.ndarray:
    """Where the photo points land in each crop (T, N, 2): constant for a perfect alignment."""
    src = np.round(np.arange(len(result.frames)) * clip.fps / 25).astype(int).clip(0, clip.num_frames - 1)
    composite = np.einsum("tij,tjk->tik", _homogeneous(result.transforms), _homogeneous(clip.photo_to_frame[src]))
    return np.einsum("tij,nj->tni", composite[:, :2, :2], PHOTO_POINTS) + composite[:, None, :2, 2]


def _spread(points: np.ndarray) -> float:
    """Largest distance of a point from its median position over the frames."""
    return float(np.linalg.norm(points - np.median(points, axis=0), axis=-1).max())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("roi_extract")
    return {
        25: make_clip(root / "jitter25.mp4", seconds=2.0, fps=25, seed=3),
        30: make_clip(root / "jitter30.mp4", seconds=2.0, fps=30, seed=4),
    }


@pytest.mark.parametrize("fps", [25, 30])
def test_crops_are_96x96_gray_at_25fps_and_stable(clips, fps):
    clip = clips[fps]
    result = extract_roi(clip.path)
    assert result.frames.shape == (50, 96, 96) and result.frames.dtype == np.uint8  # 2 s x 25 fps
    assert result.faces_found == 50 and result.landmarks.shape[1:] == (468, 2)
    # The face really moves in the video ...
    moves = clip.photo_to_frame
    in_frame = np.einsum("tij,nj->tni", moves[:, :, :2], PHOTO_POINTS) + moves[:, None, :, 2]
    assert _spread(in_frame) > 5.0
    # ... but stays put in the crops: every photo point within 2.5 px of where it usually
    # is (measured: 0.9 px at 25 fps, 1.7 px at 30 fps; without alignment 8-11 px).
    in_crop = _photo_to_crop(result, clip)
    assert _spread(in_crop) < 2.5
    assert np.allclose(np.median(in_crop[:, 0], axis=0), 48.0, atol=4.0)  # mouth near the centre
    # Pixel-wise too: consecutive crops differ much less than consecutive mouth windows.
    crop_change = np.abs(np.diff(result.frames.astype(float), axis=0)).mean()
    assert crop_change < 4.0
    assert 20 < result.frames.mean() < 235 and result.frames.std() > 10  # a face, not a flat border


def test_smoothing_and_zoom_are_configurable(clips):
    wide = extract_roi(clips[25].path, RoiConfig(crop_size=64, eye_span_px=40.0, smooth_window=1))
    assert wide.frames.shape == (50, 64, 64)
    eyes = np.einsum("tij,tnj->tni", wide.transforms[:, :, :2], MEDIAPIPE468.stable_points(wide.landmarks)[:, [0, 3]])
    assert np.allclose(np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1), 40.0, rtol=0.03)


def _photo_landmarks_ibug() -> np.ndarray:
    """iBUG-68 landmarks of the photo, from one MediaPipe run on an unjittered frame."""
    size = 224
    still = jitter_transforms(1, size, shift_px=0.0, scale=0.0, rotate_deg=0.0)
    frame = render_frames(still, size, np.ones(1, bool))[0]
    with MediaPipeFaceMesh() as mesh:
        mp_points = mesh(frame)
    assert mp_points is not None
    inverse = np.linalg.inv(_homogeneous(still)[0])[:2]
    photo = mp_points @ inverse[:, :2].T + inverse[:, 2]
    ibug = np.tile(np.asarray(PHOTO_FACE_CENTER), (68, 1))  # unused points: anywhere on the face
    for ibug_index, mp_index in IBUG_FROM_MEDIAPIPE.items():
        ibug[ibug_index] = photo[mp_index]
    return ibug


def test_precomputed_ibug68_pickle_with_missing_frames(clips, tmp_path):
    clip = clips[30]  # landmarks are per source frame: 60 at 30 fps
    photo = _photo_landmarks_ibug()
    track = np.einsum("tij,nj->tni", clip.photo_to_frame[:, :, :2], photo) + clip.photo_to_frame[:, None, :, 2]
    missing = [5, 6, 7, 40]
    track[missing] = np.nan  # frames without a face, as None in the pickle
    path = save_landmarks_pickle(tmp_path / "jitter30.pkl", track)
    result = extract_roi(clip.path, landmarks=load_landmarks(path))
    assert result.frames.shape == (50, 96, 96) and result.landmarks.shape[1:] == (68, 2)
    nearest_source = np.round(np.arange(50) * 30 / 25).astype(int)
    assert result.faces_found == 50 - np.isin(nearest_source, missing).sum() < 50
    assert _spread(_photo_to_crop(result, clip)) < 2.0  # exact landmarks: as stable as detection
    # Same canonical face for both layouts: crops from 68 points look like MediaPipe's.
    detected = extract_roi(clip.path)
    assert np.abs(result.frames.astype(float) - detected.frames).mean() < 12.0


def test_second_decoding_pass_matches_cached_frames(clips):
    cached = extract_roi(clips[30].path, RoiConfig(smooth_window=3))
    redecoded = extract_roi(clips[30].path, RoiConfig(smooth_window=3, frame_cache_mb=0.01))
    np.testing.assert_array_equal(cached.frames, redecoded.frames)
