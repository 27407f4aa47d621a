"""A toy audio-visual corpus in ESPnet data-dir form, for tests and benchmarks.

Each utterance spells a few symbols; every symbol lasts ``frames_per_symbol`` video frames
and has its own audio tone and its own visual pattern (a bright block at a symbol-specific
position of the 96x96 "mouth" image), so all three modalities can learn the mapping. The
directory holds ``wav.scp`` (16 kHz wav), ``video.scp`` (uint8 ROIs in lossless .mkv or
.npz), ``text`` and ``utt2spk``, sorted by utterance id.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import soundfile

from espnet_usr2.data.roi_io import save_roi

SAMPLE_RATE = 16000
FPS = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FPS
DEFAULT_SYMBOLS = "abcdef"


@dataclass
class ToyCorpusSpec:
    num_utts: int = 40
    min_symbols: int = 2
    max_symbols: int = 4
    frames_per_symbol: int = 5
    symbols: str = DEFAULT_SYMBOLS
    image_size: int = 96
    roi_format: str = "npz"
    noise: float = 0.05
    seed: int = 0


def toy_token_list(symbols: str = DEFAULT_SYMBOLS) -> List[str]:
    """ESPnet char token list for the toy corpus: <blank>, <unk>, symbols, <space>, <sos/eos>."""
    return ["<blank>", "<unk>", *symbols, "<space>", "<sos/eos>"]


def _symbol_audio(symbol_index: int, n_samples: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    t = np.arange(n_samples) / SAMPLE_RATE
    freq = 300.0 + 250.0 * symbol_index
    return 0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(n_samples)


def _symbol_frames(symbol_index: int, n_frames: int, size: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    frames = np.full((n_frames, size, size), 90.0)
    block = size // 4
    row, col = divmod(symbol_index, 3)
    frames[:, block * row + 8: block * row + 8 + block, block * col + 8: block * col + 8 + block] = 220.0
    frames += 255.0 * noise * rng.standard_normal(frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_toy_corpus(out_dir: Path, spec: ToyCorpusSpec = ToyCorpusSpec(), prefix: str = "utt") -> Dict[str, str]:
    """Write the corpus into ``out_dir``; returns {utt_id: transcript}."""
    out_dir = Path(out_dir)
    (out_dir / "media").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    texts: Dict[str, str] = {}
    wav_lines, video_lines = [], []
    for i in range(spec.num_utts):
        uid = f"spk{i % 3}-{prefix}{i:04d}"
        length = int(rng.integers(spec.min_symbols, spec.max_symbols + 1))
        indices = rng.integers(0, len(spec.symbols), size=length)
        n = spec.frames_per_symbol
        audio = np.concatenate([_symbol_audio(k, n * SAMPLES_PER_FRAME, rng, spec.noise) for k in indices])
        video = np.concatenate([_symbol_frames(k, n, spec.image_size, rng, spec.noise) for k in indices])
        wav_path = out_dir / "media" / f"{uid}.wav"
        soundfile.write(wav_path, audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        roi_path = save_roi(out_dir / "media" / f"{uid}.{spec.roi_format}", video)
        texts[uid] = "".join(spec.symbols[k] for k in indices)
        wav_lines.append(f"{uid} {wav_path.resolve()}")
        video_lines.append(f"{uid} {roi_path.resolve()}")
    _write_lines(out_dir / "wav.scp", wav_lines)
    _write_lines(out_dir / "video.scp", video_lines)
    _write_lines(out_dir / "text", [f"{u} {t}" for u, t in texts.items()])
    _write_lines(out_dir / "utt2spk", [f"{u} {u.split('-')[0]}" for u in texts])
    return texts


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in sorted(lines)), encoding="utf-8")
