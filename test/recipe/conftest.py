"""Fixtures of the recipe tests."""

from __future__ import annotations

import pytest

CLIP_SIZE = 128  # small frames keep face detection fast


@pytest.fixture(scope="session")
def recipe_copy():
    """``recipe_copy(corpus, dst)``: egs2/<corpus>/usr2 as a user has it, in ``dst``: every
    entry linked except what running the recipe writes (downloads/, data*/, dump*/, exp*/
    and hidden files), so a test's outputs land in ``dst`` and never in the checkout."""
    from espnet_usr2.testing.recipes import link_recipe

    return link_recipe


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


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_config, token_list, tmp_path_factory):
    """The tiny model with random weights as training leaves it (config.yaml + model.pth),
    for recipes that decode a given model (--model_dir); char tokens."""
    from espnet_usr2.tasks.config import write_untrained_model_dir

    return write_untrained_model_dir(tmp_path_factory.mktemp("models") / "given_model", tiny_config, token_list, "char")
