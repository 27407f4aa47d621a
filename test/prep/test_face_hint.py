"""Face hints (the speaker among several faces) and the landmark-list fallback to detection.

* :func:`select_track` on synthetic detections: the hinted face is kept whatever order
  the detector reports faces in, a missed speaker is a gap rather than a switch to
  someone else, and a rough hint still finds its face.
* A generated video with two talking faces side by side (left mouth closed, right mouth
  wide open): the hint decides which mouth ends up in the crops.
* ``--landmarks`` lists that lack an utterance: face detection takes over for it and it
  is listed (or, with ``--missing_landmarks skip``, it is skipped with a reason).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from espnet_usr2.bin.usr2_prepare_roi import main
from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.face_select import face_centre, read_face_hints, select_track
from espnet_usr2.prep.landmarks import save_landmarks_pickle
from espnet_usr2.prep.roi_lists import LANDMARK_FALLBACK, read_kaldi_map, read_skip_report, read_uttid_list
from espnet_usr2.prep.roi_pipeline import extract_roi

FACE = 128  # side of each face's half of the two-face frames
SECONDS = 1.2


# ------------------------------------------------------------------ track selection
def _face(cx: float, cy: float, width: float = 40.0) -> np.ndarray:
    """A square of landmarks ``(4, 2)`` centred on (cx, cy)."""
    half = width / 2
    return np.array([[cx - half, cy - half], [cx + half, cy - half], [cx - half, cy + half], [cx + half, cy + half]])


def _centres(track) -> list:
    return [None if f is None else tuple(np.round(face_centre(f)).astype(int)) for f in track]


def test_hinted_face_is_kept_whatever_the_detection_order():
    # Two people drifting right; the detector lists them in a different order each frame.
    frames = []
    for t in range(10):
        left, right = _face(60 + 2 * t, 64), _face(190 + 2 * t, 64)
        frames.append([left, right] if t % 2 else [right, left])
    assert _centres(select_track(frames, np.array([64.0, 60.0]))) == [(60 + 2 * t, 64) for t in range(10)]
    assert _centres(select_track(frames, np.array([200.0, 70.0]))) == [(190 + 2 * t, 64) for t in range(10)]


def test_missed_speaker_is_a_gap_not_a_switch():
    frames = [[_face(60, 64), _face(190, 64)] for _ in range(6)]
    frames[3] = [_face(190, 64)]  # the speaker (left) is not detected in frame 3
    frames[4] = []
    track = select_track(frames, np.array([60.0, 64.0]))
    assert _centres(track) == [(60, 64)] * 3 + [None, None] + [(60, 64)]


def test_acquisition_waits_for_the_hinted_face_then_rough_hints_still_work():
    # Frames 0-1 show only the other person: they get no face, the speaker is taken from frame 2.
    frames = [[_face(190, 64)], [_face(190, 64)]] + [[_face(60, 64), _face(190, 64)]] * 3
    assert _centres(select_track(frames, np.array([60.0, 64.0]))) == [None, None] + [(60, 64)] * 3
    # A hint more than a face width off every face: the nearest one, from the first frame on.
    frames = [[_face(60, 64), _face(190, 64)]] * 4
    assert _centres(select_track(frames, np.array([10.0, 120.0]), acquire_frames=2)) == [(60, 64)] * 4


def test_read_face_hints(tmp_path: Path):
    good = tmp_path / "hints"
    good.write_text("a 0.25 0.5\n\nb 0.75 0.40\nb 0.75 0.40\n")  # a repeated identical line is harmless
    assert read_face_hints(good) == {"a": (0.25, 0.5), "b": (0.75, 0.4)}
    for text, message in (
        ("a 0.25\n", "expected"),
        ("a x 0.5\n", "could not convert"),
        ("a nan 0.5\n", "finite"),
        ("a 0.1 0.5\na 0.2 0.5\n", "two different"),
    ):
        bad = tmp_path / "bad"
        bad.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_face_hints(bad)


# ------------------------------------------------------------------ a video with two faces
@pytest.fixture(scope="module")
def two_faces(tmp_path_factory) -> Path:
    """Two copies of the talking face side by side, drifting a little: left with the mouth
    closed, right with the mouth wide open (teeth and dark cavity showing); tone audio."""
    from espnet_usr2.prep.talking_face import MouthShape, TalkingFace, head_motion
    from espnet_usr2.testing.roi_synth import tone, write_clip

    n = int(SECONDS * 25)
    rng = np.random.default_rng(0)
    left, right = TalkingFace(size=FACE), TalkingFace(size=FACE)
    closed, opened = MouthShape(opening=0.0), MouthShape(opening=1.0, teeth=0.6)
    poses_l, poses_r = head_motion(n, rng, 2.0), head_motion(n, rng, 2.0)
    frames = np.stack(
        [np.concatenate([left.render(closed, poses_l[t]), right.render(opened, poses_r[t])], axis=1) for t in range(n)]
    )
    path = tmp_path_factory.mktemp("two_faces") / "two.mp4"
    write_clip(path, frames, 25, tone(SECONDS, 16000, 1), sample_rate=16000)
    return path


def _mouth_darkness(crops: np.ndarray) -> float:
    """How dark the middle of the crops is (the mouth sits at the crop centre)."""
    return 255.0 - float(crops[:, 40:60, 32:64].mean())


def test_the_hint_picks_which_face_is_cropped(two_faces: Path):
    left = extract_roi(two_faces, face_hint=(0.25, 0.5))
    right = extract_roi(two_faces, face_hint=(0.75, 0.5))
    n = int(SECONDS * 25)
    assert left.faces_found == n and right.faces_found == n
    # Every frame's landmarks lie on the hinted half of the 2*FACE wide frame.
    assert (left.landmarks[..., 0].max(axis=1) < FACE).all()
    assert (right.landmarks[..., 0].min(axis=1) > FACE).all()
    # The open mouth (dark cavity) is in the right face's crops, not in the left's.
    assert _mouth_darkness(right.frames) > _mouth_darkness(left.frames) + 15, (
        _mouth_darkness(right.frames),
        _mouth_darkness(left.frames),
    )
    assert np.abs(right.frames.astype(float) - left.frames.astype(float)).mean() > 5


def test_cli_face_hint_and_landmark_fallback(two_faces: Path, tmp_path: Path):
    """Through the CLI: a, b have hints (left, right); only a has precomputed landmarks
    (the left face's), so b falls back to detection (with its hint) and is listed."""
    left_landmarks = extract_roi(two_faces, face_hint=(0.25, 0.5)).landmarks  # 25 fps source: 1:1
    lm_file = save_landmarks_pickle(tmp_path / "a.pkl", left_landmarks)
    listing = tmp_path / "video.scp"
    listing.write_text(f"a {two_faces}\nb {two_faces}\n")
    (tmp_path / "lm.scp").write_text(f"a {lm_file}\n")
    (tmp_path / "hints").write_text("a 0.25 0.5\nb 0.75 0.5\n")
    common = ["--input", str(listing), "--landmarks", str(tmp_path / "lm.scp"), "--face_hint", str(tmp_path / "hints")]

    out = tmp_path / "out"
    assert main([*common, "--outdir", str(out), "--roi_format", "npy"]) == 0
    frames = read_kaldi_map(out / "utt2num_frames")
    assert frames == {"a": str(int(SECONDS * 25)), "b": str(int(SECONDS * 25))}
    assert read_uttid_list(out / LANDMARK_FALLBACK) == ["b"]
    assert read_skip_report(out / "skipped.tsv") == []
    crops = {u: np.load(p) for u, p in read_kaldi_map(out / "video.scp").items()}
    assert _mouth_darkness(crops["b"]) > _mouth_darkness(crops["a"]) + 15  # b: the right face

    strict = tmp_path / "strict"
    assert main([*common, "--outdir", str(strict), "--roi_format", "npy", "--missing_landmarks", "skip"]) == 0
    assert list(read_kaldi_map(strict / "utt2num_frames")) == ["a"]
    assert [(s.uttid, s.reason) for s in read_skip_report(strict / "skipped.tsv")] == [("b", E.MISSING_LANDMARKS)]
    assert not (strict / LANDMARK_FALLBACK).exists()


def test_cli_summary_counts_the_fallback(two_faces: Path, tmp_path: Path, capsys):
    listing = tmp_path / "video.scp"
    listing.write_text(f"x {two_faces}\n")
    (tmp_path / "lm.scp").write_text("")  # a landmark list without this utterance
    assert (
        main(
            [
                "--input",
                str(listing),
                "--outdir",
                str(tmp_path / "o"),
                "--landmarks",
                str(tmp_path / "lm.scp"),
                "--nj",
                "1",
                "--roi_format",
                "npy",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "1 input utterances = 1 processed" in out
    assert f"1 processed with face detection: not in the landmark list (listed in {LANDMARK_FALLBACK})" in out
