"""Landmark clean-up, similarity alignment and landmark files (no video decoding)."""

import pickle

import numpy as np
import pytest

from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.align import apply_affine, crop_transforms, fill_gaps, fit_similarity, missing_runs, smooth
from espnet_usr2.prep.landmark_sets import (
    CANONICAL_STABLE_POINTS,
    IBUG68,
    MEDIAPIPE468,
    STABLE_POINT_NAMES,
    landmark_set_for,
)
from espnet_usr2.prep.landmarks import load_landmarks, save_landmarks_pickle
from espnet_usr2.prep.roi_errors import SkipUtterance


def _similarity(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def _ibug_face(matrix: np.ndarray) -> np.ndarray:
    """68 points: the canonical stable points plus a mouth ring below them, moved by ``matrix``."""
    points = np.zeros((68, 2))
    for name, canonical in zip(STABLE_POINT_NAMES, CANONICAL_STABLE_POINTS):
        points[IBUG68.stable[name][0]] = canonical
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    points[48:60] = np.stack([0.3 * np.cos(angles), 0.75 + 0.1 * np.sin(angles)], axis=1)
    return points @ matrix[:, :2].T + matrix[:, 2]


def test_missing_runs():
    valid = np.array([False, True, True, False, False, True, False])
    assert missing_runs(valid) == [(0, 1), (3, 5), (6, 7)]
    assert missing_runs(np.ones(4, bool)) == []


def test_fill_gaps_interpolates_inside_and_holds_at_edges():
    track = np.arange(8, dtype=float)[:, None, None] * np.ones((1, 2, 2))
    track[[0, 3, 4, 7]] = np.nan
    filled = fill_gaps(track, max_gap=2)
    np.testing.assert_allclose(filled[:, 0, 0], [1, 1, 2, 3, 4, 5, 6, 6])


def test_fill_gaps_rejects_long_gaps_and_faceless_clips():
    track = np.zeros((10, 3, 2))
    track[2:6] = np.nan
    with pytest.raises(SkipUtterance) as err:
        fill_gaps(track, max_gap=3)
    assert err.value.reason == E.FACE_GAP_TOO_LONG and "2-5" in err.value.detail
    fill_gaps(track, max_gap=4)  # the same gap is fine when allowed
    with pytest.raises(SkipUtterance) as err:
        fill_gaps(np.full((5, 3, 2), np.nan), max_gap=100)
    assert err.value.reason == E.NO_FACE


def test_smooth_keeps_linear_motion_and_reduces_noise():
    t = np.arange(40, dtype=float)
    line = np.stack([2.0 * t + 1, -t], axis=1)
    np.testing.assert_allclose(smooth(line, 5), line)  # centred windows cannot lag
    noise = np.random.default_rng(0).normal(size=(400, 2))
    assert smooth(noise, 5).std() < 0.6 * noise.std()
    np.testing.assert_array_equal(smooth(noise, 1), noise)


def test_fit_similarity_recovers_known_transform():
    rng = np.random.default_rng(1)
    dst = rng.normal(size=(5, 2)) * 50
    truth = _similarity(0.7, 12.0, 30.0, -8.0)
    inverse = np.linalg.inv(np.vstack([truth, [0, 0, 1]]))[:2]
    src = (dst @ inverse[:, :2].T + inverse[:, 2])[None].repeat(3, axis=0)
    fitted = fit_similarity(src, dst)
    np.testing.assert_allclose(fitted, np.repeat(truth[None], 3, axis=0), atol=1e-9)
    with pytest.raises(SkipUtterance):
        fit_similarity(np.ones((1, 5, 2)), dst)


def test_crop_transform_puts_mouth_at_centre_whatever_the_pose():
    poses = [_similarity(60 + 5 * t, 8 * np.sin(t), 100 + 3 * t, 120 - 2 * t) for t in range(10)]
    landmarks = np.stack([_ibug_face(m) for m in poses])
    transforms = crop_transforms(landmarks, IBUG68, crop_size=96, eye_span_px=80, center_window=1)
    mouth = apply_affine(transforms, IBUG68.mouth_points(landmarks)).mean(axis=1)
    np.testing.assert_allclose(mouth, 48.0, atol=1e-6)
    eyes = apply_affine(transforms, IBUG68.stable_points(landmarks))[:, [0, 3]]
    np.testing.assert_allclose(np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1), 80 * 1.0, atol=1e-6)


def test_landmark_sets_share_semantics():
    assert landmark_set_for(68) is IBUG68
    assert landmark_set_for(468) is MEDIAPIPE468 and landmark_set_for(478) is MEDIAPIPE468
    with pytest.raises(ValueError):
        landmark_set_for(5)
    for lset in (IBUG68, MEDIAPIPE468):
        assert lset.stable_points(np.zeros((3, lset.num_points, 2))).shape == (3, len(STABLE_POINT_NAMES), 2)


def test_mediapipe_mouth_indices_are_its_outer_lip_contour():
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_LIPS

    lips = {i for edge in FACEMESH_LIPS for i in edge}
    assert set(MEDIAPIPE468.mouth) <= lips
    # Consecutive ring points are connected in the mesh's lip contour.
    ring = list(MEDIAPIPE468.mouth) + [MEDIAPIPE468.mouth[0]]
    edges = {frozenset(e) for e in FACEMESH_LIPS}
    assert all(frozenset(pair) in edges for pair in zip(ring[:-1], ring[1:]))


def test_load_landmarks_release_pickle_with_missing_frames(tmp_path):
    frames = [np.full((68, 2), 3.0, np.float32), None, np.full((1, 68, 2), 5.0)]
    path = tmp_path / "clip.pkl"
    path.write_bytes(pickle.dumps(frames))
    track = load_landmarks(path)
    assert track.shape == (3, 68, 2)
    assert np.isnan(track[1]).all() and (track[0] == 3).all() and (track[2] == 5).all()
    again = load_landmarks(save_landmarks_pickle(tmp_path / "again.pkl", track))
    np.testing.assert_array_equal(np.isnan(again), np.isnan(track))
    np.save(tmp_path / "clip.npy", track)
    np.testing.assert_array_equal(np.isnan(load_landmarks(tmp_path / "clip.npy")), np.isnan(track))


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_load_landmarks_pickles_of_any_protocol_and_numpy_1(tmp_path, protocol):
    frames = [np.arange(136, dtype=np.float32).reshape(68, 2), None]
    data = pickle.dumps(frames, protocol=protocol)
    if protocol == 2:  # text module names: write them the way numpy 1.x did
        data = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    (tmp_path / "p.pkl").write_bytes(data)
    track = load_landmarks(tmp_path / "p.pkl")
    assert track[0, 5, 1] == 11 and np.isnan(track[1]).all()


class _Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


@pytest.mark.parametrize(
    "payload, reason",
    [
        (pickle.dumps(_Evil()), E.UNREADABLE_LANDMARKS),
        (b"not a pickle", E.UNREADABLE_LANDMARKS),
        (pickle.dumps([None, None]), E.NO_FACE),
        (pickle.dumps([np.zeros((68, 2)), np.zeros((5, 2))]), E.UNREADABLE_LANDMARKS),
        (pickle.dumps([np.zeros((7, 2))]), E.UNREADABLE_LANDMARKS),
    ],
)
def test_load_landmarks_rejects_bad_files(tmp_path, payload, reason):
    path = tmp_path / "bad.pkl"
    path.write_bytes(payload)
    with pytest.raises(SkipUtterance) as err:
        load_landmarks(path)
    assert err.value.reason == reason
    with pytest.raises(SkipUtterance) as err:
        load_landmarks(tmp_path / "absent.pkl")
    assert err.value.reason == E.MISSING_LANDMARKS
