"""Shared fixtures: the tiny config, the toy token list, padded A/V batches."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence

import pytest
import torch

from espnet_usr2.utils.toy_data import SAMPLES_PER_FRAME, toy_token_list

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "egs2" / "TEMPLATE" / "usr2" / "conf"
TINY_CONFIG = CONF_DIR / "train_usr2_tiny.yaml"


@pytest.fixture(scope="session")
def token_list():
    return toy_token_list()


@pytest.fixture(scope="session")
def tiny_config() -> Path:
    return TINY_CONFIG


def make_av_batch(frame_lengths: Sequence[int], text_lengths: Sequence[int], vocab_size: int,
                  seed: int = 0, image_size: int = 96) -> Dict[str, torch.Tensor]:
    """A padded batch with random pixels, waveforms and token ids (ids 2 .. vocab-2)."""
    g = torch.Generator().manual_seed(seed)
    frames = torch.tensor(frame_lengths)
    tlens = torch.tensor(text_lengths)
    batch, t_max, l_max = len(frame_lengths), max(frame_lengths), max(text_lengths)
    video = torch.rand(batch, t_max, image_size, image_size, generator=g) * 255
    speech = torch.randn(batch, t_max * SAMPLES_PER_FRAME, generator=g)
    text = torch.randint(2, vocab_size - 2, (batch, l_max), generator=g)
    for i in range(batch):
        video[i, frames[i]:] = 0
        speech[i, frames[i] * SAMPLES_PER_FRAME:] = 0
        text[i, tlens[i]:] = -1
    return dict(speech=speech, speech_lengths=frames * SAMPLES_PER_FRAME, video=video,
                video_lengths=frames, text=text, text_lengths=tlens)


TRAIN_CMD = [sys.executable, "-m", "espnet_usr2.bin.usr2_train"]
QUIET_TRAINING = ["--use_matplotlib", "false", "--use_tensorboard", "false", "--num_att_plot", "0"]


def run_usr2_train(args: Sequence[str], cwd: Path) -> str:
    """Run ``python -m espnet_usr2.bin.usr2_train ARGS``; fail the test with its log tail on error."""
    proc = subprocess.run([*TRAIN_CMD, *args], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stderr
