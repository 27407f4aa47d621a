"""Fixtures of the recipe tests."""
from __future__ import annotations

import pytest

CLIP_SIZE = 128  # small frames keep face detection fast


@pytest.fixture(scope="session")
def clips(tmp_path_factory):
    """Two synthetic talking-face clips (2.4 s and 1.2 s, 25 fps, 44.1 kHz stereo AAC),
    copied wherever a corpus needs a video, and their per-frame landmarks (MediaPipe, once)."""
    from espnet_usr2.prep.roi_pipeline import extract_roi
    from espnet_usr2.testing.roi_synth import make_clip

    root = tmp_path_factory.mktemp("clips")
    long = make_clip(root / "long.mp4", seconds=2.4, size=CLIP_SIZE, seed=1).path
    short = make_clip(root / "short.mp4", seconds=1.2, size=CLIP_SIZE, seed=2).path
    lms = {"long": extract_roi(long).landmarks, "short": extract_roi(short).landmarks}
    return {"long": long, "short": short, "landmarks": lms}
