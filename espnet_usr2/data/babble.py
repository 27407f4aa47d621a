"""Babble noise for the robustness analysis (paper Sec. 5.2): noisy copies of 16 kHz audio.

:func:`mix_at_snr` adds noise to a 16 kHz waveform at an exact SNR (power ratio over the whole
utterance).  The noise comes from a user's file (:class:`FileNoise`: looped or cropped, at an
offset fixed by the seed and the utterance id) or is babble synthesised from other utterances
of the corpus (:class:`CorpusBabble`: a seeded choice of talkers, each at equal level), or
:func:`make_babble_noise` builds one babble file the way AV-HuBERT's LRS3 recipe does.  The
same utterance gets the same noise at every SNR, so SNR curves compare like with like.
:func:`write_noisy_wav_scp` makes a noisy copy of a ``wav.scp`` for decoding.

The WER tables and plots over these conditions are in :mod:`espnet_usr2.analysis.robustness`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Mapping, Union

import numpy as np

log = logging.getLogger(__name__)

PathLike = Union[str, Path]

SAMPLE_RATE = 16000


class WavScpError(ValueError):
    """A ``wav.scp`` cannot be read as ``uttid /path/to.wav`` lines."""


def stable_seed(*parts: object) -> int:
    """A seed from values (e.g. user seed and utterance id) that is the same in every run.

    Python's ``hash`` of a string changes between processes, so it cannot be used.
    """
    digest = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little")


def fit_to_length(noise: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """``length`` samples of ``noise`` starting at ``offset``, wrapping around (looping) as needed."""
    if noise.ndim != 1 or noise.size == 0:
        raise ValueError("noise must be a non-empty 1-D array")
    return np.take(noise, offset + np.arange(length), mode="wrap")


def signal_power(x: np.ndarray) -> float:
    """Mean square, in float64 (float32 sums lose precision over long signals)."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.mean(x * x)) if x.size else 0.0


def mix_at_snr(speech: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``speech + g * noise`` with ``g`` chosen so that 10 log10(P_speech / P_scaled_noise) = ``snr_db``.

    ``noise`` must already have the speech's length (see :func:`fit_to_length`).  Powers are
    taken over the whole utterance.  The result keeps the speech's float dtype and is not
    clipped (clipping would change the SNR; :func:`write_noisy_wav_scp` rescales instead).
    """
    speech = np.asarray(speech)
    noise = np.asarray(noise)
    if speech.shape != noise.shape or speech.ndim != 1:
        raise ValueError(f"speech and noise must be 1-D arrays of one length, got {speech.shape} and {noise.shape}")
    if not np.isfinite(snr_db):
        raise ValueError(f"snr_db must be finite, got {snr_db}")
    p_speech, p_noise = signal_power(speech), signal_power(noise)
    if p_speech == 0.0:
        raise ValueError("the speech is silent: an SNR is undefined")
    if p_noise == 0.0:
        raise ValueError("the noise is silent: it cannot be scaled to an SNR")
    gain = math.sqrt(p_speech / (p_noise * 10.0 ** (snr_db / 10.0)))
    out_dtype = speech.dtype if np.issubdtype(speech.dtype, np.floating) else np.float32
    return (speech.astype(np.float64) + gain * noise.astype(np.float64)).astype(out_dtype)


def read_wav(path: PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A mono float32 waveform; multi-channel files are averaged, other rates refused."""
    import soundfile as sf

    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    if sr != sample_rate:
        raise ValueError(f"{path}: sample rate {sr} Hz, expected {sample_rate} Hz (resample it first)")
    return data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]


def read_wav_scp(path: PathLike) -> Dict[str, str]:
    """``uttid /path/to.wav`` lines (plain paths; Kaldi pipe commands are not supported)."""
    entries = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split(maxsplit=1)
        if not fields:
            continue
        if len(fields) != 2 or fields[1].rstrip().endswith("|"):
            raise WavScpError(f"{path}:{lineno}: expected 'uttid /path/to.wav', got {line!r}")
        entries[fields[0]] = fields[1].strip()
    if not entries:
        raise WavScpError(f"wav.scp {str(path)!r} is empty")
    return entries


class NoiseSource:
    """Gives the noise to add to one utterance: ``source(uttid, length) -> array``."""

    def __call__(self, uttid: str, length: int) -> np.ndarray:
        raise NotImplementedError


class FileNoise(NoiseSource):
    """Noise from one file (e.g. a babble recording), looped or cropped to each utterance.

    The start offset depends only on ``seed`` and the utterance id, so reruns and different
    SNRs use the same noise segment for an utterance.
    """

    def __init__(self, noise: Union[PathLike, np.ndarray], seed: int = 0):
        self.noise = read_wav(noise) if not isinstance(noise, np.ndarray) else np.asarray(noise, np.float32)
        if self.noise.ndim != 1 or self.noise.size == 0 or signal_power(self.noise) == 0.0:
            raise ValueError("the noise must be a non-empty, non-silent mono signal")
        self.seed = seed

    def __call__(self, uttid: str, length: int) -> np.ndarray:
        offset = stable_seed("file-noise", self.seed, uttid) % self.noise.size
        return fit_to_length(self.noise, length, offset)


class CorpusBabble(NoiseSource):
    """Babble made by summing ``n_talkers`` other utterances of the corpus.

    For each target utterance a seeded generator (seed + utterance id) picks the talkers
    (never the target itself) and a start offset in each; every talker is looped or cropped
    to the target's length and scaled to unit power before summing, so no single loud
    recording dominates.  30 talkers by default, the count of AV-HuBERT's LRS3 babble
    recipe; that recipe instead makes one fixed babble file (see :func:`make_babble_noise`,
    then use it through :class:`FileNoise`).
    """

    def __init__(
        self, pool: Mapping[str, PathLike], n_talkers: int = 30, seed: int = 0, loader=read_wav, cache_size: int = 256
    ):
        if n_talkers < 1:
            raise ValueError("n_talkers must be at least 1")
        if len(pool) < 2:
            raise ValueError("babble needs at least two utterances in the pool")
        self.ids = sorted(pool)
        self.pool = dict(pool)
        self.n_talkers = n_talkers
        self.seed = seed
        self._load = lru_cache(maxsize=cache_size)(lambda uid: loader(self.pool[uid]))

    def talkers_for(self, uttid: str) -> List[str]:
        """The utterances mixed into ``uttid``'s babble (deterministic)."""
        others = [u for u in self.ids if u != uttid]
        if len(others) < self.n_talkers:
            log.warning(
                "babble for %s: only %d other utterances, fewer than n_talkers=%d", uttid, len(others), self.n_talkers
            )
        rng = np.random.default_rng(stable_seed("babble-talkers", self.seed, uttid))
        picked = rng.choice(len(others), size=min(self.n_talkers, len(others)), replace=False)
        return [others[i] for i in sorted(picked)]

    def __call__(self, uttid: str, length: int) -> np.ndarray:
        rng = np.random.default_rng(stable_seed("babble-offsets", self.seed, uttid))
        babble = np.zeros(length, dtype=np.float64)
        used = 0
        for talker in self.talkers_for(uttid):
            wav = self._load(talker)
            power = signal_power(wav)
            if wav.size == 0 or power == 0.0:
                continue  # a silent recording adds nothing but would divide by zero
            babble += fit_to_length(wav, length, int(rng.integers(wav.size))) / math.sqrt(power)
            used += 1
        if used == 0:
            raise ValueError(f"babble for {uttid}: every chosen talker is silent")
        return babble.astype(np.float32)


def make_babble_noise(
    pool: Mapping[str, PathLike], n_talkers: int = 30, min_seconds: float = 15.0, seed: int = 0, loader=read_wav
) -> np.ndarray:
    """One fixed babble signal from ``n_talkers`` utterances at least ``min_seconds`` long.

    The seeded choice of talkers is cropped to the shortest of them, each scaled to unit
    power, and averaged -- the shape of AV-HuBERT's LRS3 babble preparation (30 training
    utterances over 15 s).  Use the result with :class:`FileNoise` for every test utterance.
    ``pool`` maps utterance ids to wav paths; lengths are read from the files.
    """
    import soundfile as sf

    long_enough = sorted(u for u, p in pool.items() if sf.info(str(p)).frames >= min_seconds * SAMPLE_RATE)
    if len(long_enough) < n_talkers:
        raise ValueError(
            f"only {len(long_enough)} utterances are at least {min_seconds} s long; "
            f"{n_talkers} are needed (lower min_seconds or n_talkers)"
        )
    rng = np.random.default_rng(stable_seed("babble-file", seed))
    chosen = [long_enough[i] for i in sorted(rng.choice(len(long_enough), size=n_talkers, replace=False))]
    wavs = [loader(pool[u]) for u in chosen]
    length = min(w.size for w in wavs)
    mix = np.zeros(length, dtype=np.float64)
    for w in wavs:
        power = signal_power(w[:length])
        if power > 0.0:
            mix += w[:length] / math.sqrt(power)
    return (mix / n_talkers).astype(np.float32)


def add_noise(uttid: str, speech: np.ndarray, snr_db: float, source: NoiseSource) -> np.ndarray:
    """Noisy version of one utterance: ``source``'s noise mixed in at ``snr_db``."""
    return mix_at_snr(speech, source(uttid, len(speech)), snr_db)


def write_noisy_wav_scp(
    wav_scp: PathLike, out_dir: PathLike, snr_db: float, source: NoiseSource, subtype: str = "PCM_16"
) -> Path:
    """Write noisy copies of every utterance of ``wav_scp`` to ``out_dir/wav/`` plus a new
    ``out_dir/wav.scp``, for decoding the noisy condition.

    A mixture whose peak exceeds full scale is scaled down as a whole (speech and noise
    together, so the SNR is unchanged) instead of being clipped; how often that happened is
    logged.
    """
    import soundfile as sf

    out_dir = Path(out_dir)
    (out_dir / "wav").mkdir(parents=True, exist_ok=True)
    lines, rescaled = [], 0
    for uid, wav_path in read_wav_scp(wav_scp).items():
        noisy = add_noise(uid, read_wav(wav_path), snr_db, source)
        peak = float(np.max(np.abs(noisy))) if noisy.size else 0.0
        if peak > 0.999:
            noisy = noisy * (0.999 / peak)
            rescaled += 1
        target = (out_dir / "wav" / f"{uid}.wav").resolve()
        sf.write(str(target), noisy, SAMPLE_RATE, subtype=subtype)
        lines.append(f"{uid} {target}\n")
    scp = out_dir / "wav.scp"
    scp.write_text("".join(lines), encoding="utf-8")
    if rescaled:
        log.info("%d of %d noisy utterances were scaled down to avoid clipping", rescaled, len(lines))
    return scp
