"""Babble noise: mixing at an exact SNR, file noise, corpus babble, noisy copies of a wav.scp."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from espnet_usr2.analysis.robustness import PAPER_SNRS_DB
from espnet_usr2.data import babble as bb


def measured_snr_db(speech: np.ndarray, mixture: np.ndarray) -> float:
    """SNR of ``mixture`` relative to the clean ``speech``."""
    noise = np.asarray(mixture, dtype=np.float64) - np.asarray(speech, dtype=np.float64)
    return 10.0 * math.log10(bb.signal_power(speech) / bb.signal_power(noise))


RATE = bb.SAMPLE_RATE


def _speech_like(seconds: float, seed: int) -> np.ndarray:
    """Amplitude-modulated harmonics with pauses: non-stationary like speech."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = 110 + 40 * rng.random()
    voiced = sum(np.sin(2 * np.pi * k * f0 * t + rng.random() * 6) / k for k in range(1, 6))
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t + rng.random() * 6), 0, None) ** 2
    return (0.1 * voiced * envelope + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


def _write_wav(path: Path, x: np.ndarray) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, RATE, subtype="FLOAT")
    return path


@pytest.mark.parametrize("snr", PAPER_SNRS_DB + (20.0, -10.0))
def test_mix_at_snr_hits_the_requested_snr(snr):
    speech = _speech_like(2.0, seed=1)
    noise = np.random.default_rng(2).standard_normal(speech.size).astype(np.float32) * 0.3
    mixed = bb.mix_at_snr(speech, noise, snr)
    assert mixed.dtype == np.float32 and mixed.shape == speech.shape
    assert abs(measured_snr_db(speech, mixed) - snr) < 0.1


def test_mix_at_snr_refuses_silence_and_bad_shapes():
    speech = _speech_like(0.5, seed=1)
    with pytest.raises(ValueError, match="speech is silent"):
        bb.mix_at_snr(np.zeros_like(speech), speech, 0.0)
    with pytest.raises(ValueError, match="noise is silent"):
        bb.mix_at_snr(speech, np.zeros_like(speech), 0.0)
    with pytest.raises(ValueError, match="one length"):
        bb.mix_at_snr(speech, speech[:-1], 0.0)


def test_fit_to_length_loops_and_crops():
    noise = np.arange(5, dtype=np.float32)
    assert bb.fit_to_length(noise, 12, offset=3).tolist() == [3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4]
    assert bb.fit_to_length(noise, 2, offset=4).tolist() == [4, 0]


def test_file_noise_is_deterministic_per_utterance_and_reaches_the_snr(tmp_path):
    noise_wav = _write_wav(tmp_path / "babble.wav", _speech_like(1.3, seed=9) + _speech_like(1.3, seed=10))
    source = bb.FileNoise(noise_wav, seed=5)
    speech = _speech_like(3.0, seed=3)  # longer than the noise file: it is looped
    a, b = source("utt1", speech.size), bb.FileNoise(noise_wav, seed=5)("utt1", speech.size)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, source("utt2", speech.size))
    for snr in PAPER_SNRS_DB:
        assert abs(measured_snr_db(speech, bb.add_noise("utt1", speech, snr, source)) - snr) < 0.1


def test_corpus_babble_picks_other_utterances_deterministically(tmp_path):
    pool = {f"u{k}": _write_wav(tmp_path / f"u{k}.wav", _speech_like(0.5 + 0.1 * k, seed=k)) for k in range(8)}
    babble = bb.CorpusBabble(pool, n_talkers=3, seed=1)
    talkers = babble.talkers_for("u0")
    assert len(talkers) == 3 and "u0" not in talkers
    assert talkers == bb.CorpusBabble(pool, n_talkers=3, seed=1).talkers_for("u0")
    assert not np.array_equal(babble("u0", 8000), bb.CorpusBabble(pool, n_talkers=3, seed=2)("u0", 8000))
    assert not np.array_equal(babble("u0", 8000), babble("u1", 8000))
    noise = babble("u0", 16000)
    assert noise.shape == (16000,) and np.array_equal(noise, babble("u0", 16000))
    speech = _speech_like(1.0, seed=42)
    assert abs(measured_snr_db(speech, bb.add_noise("u0", speech, -5.0, babble)) + 5.0) < 0.1
    fixed = bb.make_babble_noise(pool, n_talkers=4, min_seconds=0.7, seed=0)
    assert fixed.size == int(0.7 * RATE) and bb.signal_power(fixed) > 0


def test_write_noisy_wav_scp_makes_a_decodable_copy(tmp_path):
    clean = {f"spk-{k}": _write_wav(tmp_path / "clean" / f"{k}.wav", _speech_like(1.0, seed=k)) for k in range(3)}
    (tmp_path / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in clean.items()))
    source = bb.CorpusBabble(clean, n_talkers=2, seed=0)
    scp = bb.write_noisy_wav_scp(tmp_path / "wav.scp", tmp_path / "noisy_0db", 0.0, source)
    entries = bb.read_wav_scp(scp)
    assert list(entries) == list(clean)
    for uid, path in entries.items():
        speech, noisy = bb.read_wav(clean[uid]), bb.read_wav(path)
        assert noisy.shape == speech.shape
        assert abs(measured_snr_db(speech, noisy) - 0.0) < 0.1  # 16-bit storage keeps the SNR
