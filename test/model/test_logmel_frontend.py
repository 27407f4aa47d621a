"""The log-mel audio frontend (``audio_frontend: logmel``), the CPU recipes' light option."""

import math
from pathlib import Path

import pytest
import torch
import yaml

from espnet_usr2.model.frontends import LogMelAudioFrontend
from espnet_usr2.tasks.config import build_model_from_config


def _tone(seconds: float, freq: float, sample_rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * sample_rate)) / sample_rate
    return torch.sin(2 * math.pi * freq * t)


def test_one_output_frame_per_640_samples_and_padding_invariance():
    torch.manual_seed(0)
    frontend = LogMelAudioFrontend(channels=32, output_size=16).eval()
    wav = torch.randn(2, 640 * 30 + 100)
    lengths = torch.tensor([640 * 30 + 100, 640 * 20 + 5])
    out, out_lengths = frontend(wav, lengths)
    assert out.shape == (2, 30, 16)
    assert out_lengths.tolist() == [30, 20]
    alone, _ = frontend(wav[1:, : 640 * 20 + 5], lengths[1:])
    torch.testing.assert_close(alone[0], out[1, :20], atol=1e-5, rtol=1e-4)
    assert out[1, 20:].abs().max() == 0  # padded frames carry nothing


def test_log_mel_puts_a_tone_in_the_right_band_and_ignores_gain():
    frontend = LogMelAudioFrontend(n_mels=40)
    noise = 0.01 * torch.randn(16000, generator=torch.Generator().manual_seed(0))  # energy in every band
    low, high = _tone(1.0, 300.0) + noise, _tone(1.0, 4000.0) + noise
    feats, _ = frontend.log_mel(torch.stack([low, high]), torch.tensor([16000, 16000]))
    peak_low, peak_high = feats[0].mean(0).argmax(), feats[1].mean(0).argmax()
    assert peak_low < peak_high
    quiet, _ = frontend.log_mel(0.01 * low[None], torch.tensor([16000]))
    torch.testing.assert_close(quiet[0], feats[0], atol=1e-3, rtol=1e-3)


def test_samples_per_frame_must_be_a_multiple_of_the_hop():
    with pytest.raises(ValueError, match="multiple of hop_length"):
        LogMelAudioFrontend(hop_length=150)


def test_selectable_from_yaml_and_trains(make_av_batch, tiny_config, token_list, tmp_path):
    config = yaml.safe_load(Path(tiny_config).read_text())
    config["audio_frontend"] = "logmel"
    config["audio_frontend_conf"] = {"channels": 16, "output_size": 16}
    path = tmp_path / "logmel.yaml"
    path.write_text(yaml.safe_dump(config))
    torch.manual_seed(0)
    model = build_model_from_config(path, token_list)
    assert isinstance(model.audio_frontend, LogMelAudioFrontend)
    batch = make_av_batch([40, 30], [6, 4], len(token_list))
    with model.using_modalities(["a"]):
        loss, _, _ = model(**batch)
    loss.backward()
    assert torch.isfinite(loss) and model.audio_frontend.convs[0][0].weight.grad.abs().sum() > 0
    # usr2_model_info builds on the meta device: the fixed mel matrix must not break that
    meta = build_model_from_config(path, token_list, meta=True)
    assert sum(p.numel() for p in meta.parameters()) == sum(p.numel() for p in model.parameters())
