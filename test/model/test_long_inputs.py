"""Frontends on long raw waveforms: memory grows linearly with the input length."""

import subprocess
import sys

import torch

from espnet_usr2.utils.masks import pad_mask, valid_mask

_PEAK_RSS_SCRIPT = """
import resource, torch
from espnet_usr2.model.frontends import ResNet1DAudioFrontend
frontend = ResNet1DAudioFrontend().eval()
samples = 30 * 16000  # 30 s of audio, Base-size frontend
with torch.no_grad():
    feats, lengths = frontend(torch.randn(2, samples), torch.tensor([samples, samples // 2]))
assert feats.shape == (2, 750, 512) and lengths.tolist() == [750, 375], (feats.shape, lengths)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)
"""


def test_masks():
    lengths = torch.tensor([3, 0, 5])
    assert valid_mask(lengths, 5).tolist() == [[1, 1, 1, 0, 0], [0] * 5, [1] * 5]
    assert torch.equal(pad_mask(lengths, 5), ~valid_mask(lengths, 5))


def test_thirty_seconds_of_audio_encode_in_bounded_memory():
    proc = subprocess.run([sys.executable, "-c", _PEAK_RSS_SCRIPT], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    peak_gb = float(proc.stdout.split()[-1])
    assert peak_gb < 3.0, f"peak RSS {peak_gb:.1f} GB"
