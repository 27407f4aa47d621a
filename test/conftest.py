"""Shared fixtures: the tiny config, the toy corpus and its token list, padded A/V batches,
and a runner of ``python -m espnet_usr2.bin.usr2_train``.

Tests get these as fixture arguments (never ``from conftest import ...``). The toy corpus
is test data only, so its generator lives here rather than in the package.

The toy corpus (an ESPnet data dir): each utterance spells a few symbols; every symbol
lasts ``frames_per_symbol`` video frames and has its own audio tone and its own visual
pattern (a bright block at a symbol-specific position of the 96x96 "mouth" image), so all
three modalities can learn the mapping. The directory holds ``wav.scp`` (16 kHz wav),
``video.scp`` (uint8 ROIs in lossless .mkv or .npz), ``text`` and ``utt2spk``, sorted by
utterance id.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import pytest
import soundfile
import torch
import yaml

from espnet_usr2.data.roi_io import save_roi

REPO_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = REPO_ROOT / "egs2" / "TEMPLATE" / "usr2" / "conf"
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // 25
TOY_SYMBOLS = "abcdef"


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def conf_dir() -> Path:
    """``egs2/TEMPLATE/usr2/conf``: the shipped training and decoding configs."""
    return CONF_DIR


@pytest.fixture(scope="session")
def tiny_config() -> Path:
    """The tiny training config (a few hundred thousand parameters) most tests build."""
    return CONF_DIR / "train_usr2_tiny.yaml"


@pytest.fixture(scope="session")
def token_list() -> List[str]:
    """ESPnet char token list of the toy corpus: <blank>, <unk>, symbols, <space>, <sos/eos>."""
    return ["<blank>", "<unk>", *TOY_SYMBOLS, "<space>", "<sos/eos>"]


@pytest.fixture(scope="session")
def write_toy_corpus():
    """``write_toy_corpus(out_dir, prefix="utt", **spec)`` writes a toy corpus, returns {utt_id: text}.

    ``spec`` keys (:class:`ToyCorpusSpec`): num_utts (40), min_symbols (2), max_symbols (4),
    frames_per_symbol (5), image_size (96), roi_format ("npz" or "mkv"), noise (0.05), seed (0).
    """

    def write(out_dir: Path, prefix: str = "utt", **spec) -> Dict[str, str]:
        return _write_toy_corpus(Path(out_dir), ToyCorpusSpec(**spec), prefix)

    return write


@pytest.fixture(scope="session")
def make_av_batch():
    """``make_av_batch(frame_lengths, text_lengths, vocab_size, seed=0, image_size=96)``: a padded
    batch with random pixels, waveforms and token ids (ids 2 .. vocab-2)."""
    return _make_av_batch


@pytest.fixture(scope="session")
def usr2_train():
    """Runner of ``python -m espnet_usr2.bin.usr2_train`` (see :class:`USR2TrainRunner`)."""
    return USR2TrainRunner()


# ----------------------------------------------------------------------------- the toy corpus
@dataclass
class ToyCorpusSpec:
    num_utts: int = 40
    min_symbols: int = 2
    max_symbols: int = 4
    frames_per_symbol: int = 5
    image_size: int = 96
    roi_format: str = "npz"
    noise: float = 0.05
    seed: int = 0


def _symbol_audio(symbol_index: int, n_samples: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    t = np.arange(n_samples) / SAMPLE_RATE
    freq = 300.0 + 250.0 * symbol_index
    return 0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(n_samples)


def _symbol_frames(symbol_index: int, n_frames: int, size: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    frames = np.full((n_frames, size, size), 90.0)
    block = size // 4
    row, col = divmod(symbol_index, 3)
    frames[:, block * row + 8 : block * row + 8 + block, block * col + 8 : block * col + 8 + block] = 220.0
    frames += 255.0 * noise * rng.standard_normal(frames.shape)
    return np.clip(frames, 0, 255).astype(np.uint8)


def _write_toy_corpus(out_dir: Path, spec: ToyCorpusSpec, prefix: str) -> Dict[str, str]:
    (out_dir / "media").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    texts: Dict[str, str] = {}
    wav_lines, video_lines, frame_lines = [], [], []
    for i in range(spec.num_utts):
        uid = f"spk{i % 3}-{prefix}{i:04d}"
        length = int(rng.integers(spec.min_symbols, spec.max_symbols + 1))
        indices = rng.integers(0, len(TOY_SYMBOLS), size=length)
        n = spec.frames_per_symbol
        audio = np.concatenate([_symbol_audio(k, n * SAMPLES_PER_FRAME, rng, spec.noise) for k in indices])
        video = np.concatenate([_symbol_frames(k, n, spec.image_size, rng, spec.noise) for k in indices])
        wav_path = out_dir / "media" / f"{uid}.wav"
        soundfile.write(wav_path, audio.astype(np.float32), SAMPLE_RATE, subtype="PCM_16")
        roi_path = save_roi(out_dir / "media" / f"{uid}.{spec.roi_format}", video)
        texts[uid] = "".join(TOY_SYMBOLS[k] for k in indices)
        wav_lines.append(f"{uid} {wav_path.resolve()}")
        video_lines.append(f"{uid} {roi_path.resolve()}")
        frame_lines.append(f"{uid} {len(video)}")
    _write_lines(out_dir / "wav.scp", wav_lines)
    _write_lines(out_dir / "video.scp", video_lines)
    _write_lines(out_dir / "utt2num_frames", frame_lines)  # as usr2.sh stage 3 leaves it
    _write_lines(out_dir / "text", [f"{u} {t}" for u, t in texts.items()])
    _write_lines(out_dir / "utt2spk", [f"{u} {u.split('-')[0]}" for u in texts])
    return texts


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in sorted(lines)), encoding="utf-8")


# ----------------------------------------------------------------------------- batches, training
def _make_av_batch(
    frame_lengths: Sequence[int], text_lengths: Sequence[int], vocab_size: int, seed: int = 0, image_size: int = 96
) -> Dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    frames = torch.tensor(frame_lengths)
    tlens = torch.tensor(text_lengths)
    batch, t_max, l_max = len(frame_lengths), max(frame_lengths), max(text_lengths)
    video = torch.rand(batch, t_max, image_size, image_size, generator=g) * 255
    speech = torch.randn(batch, t_max * SAMPLES_PER_FRAME, generator=g)
    text = torch.randint(2, vocab_size - 2, (batch, l_max), generator=g)
    for i in range(batch):
        video[i, frames[i] :] = 0
        speech[i, frames[i] * SAMPLES_PER_FRAME :] = 0
        text[i, tlens[i] :] = -1
    return dict(
        speech=speech,
        speech_lengths=frames * SAMPLES_PER_FRAME,
        video=video,
        video_lengths=frames,
        text=text,
        text_lengths=tlens,
    )


class USR2TrainRunner:
    """``runner(args, cwd)`` runs the training entry point and returns its log (stderr); a
    failed run fails the test with the log's tail. ``cmd`` is the command without
    arguments, ``quiet`` the options that turn off plots and tensorboard."""

    cmd = [sys.executable, "-m", "espnet_usr2.bin.usr2_train"]
    quiet = ["--use_matplotlib", "false", "--use_tensorboard", "false", "--num_att_plot", "0"]

    def __call__(self, args: Sequence[str], cwd: Path) -> str:
        proc = subprocess.run([*self.cmd, *args], cwd=cwd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-4000:]
        return proc.stderr

    @staticmethod
    def data_args(root: Path) -> List[str]:
        """The ``--{train,valid}_data_path_and_name_and_type`` options of toy corpora written to
        ``root/train`` and ``root/valid`` (speech, video and text)."""
        args = []
        for split in ("train", "valid"):
            for fname, name, ftype in (
                ("wav.scp", "speech", "sound"),
                ("video.scp", "video", "roi_video"),
                ("text", "text", "text"),
            ):
                args += [f"--{split}_data_path_and_name_and_type", f"{root / split / fname},{name},{ftype}"]
        return args


# ----------------------------------------------------------------------------- ESPnet LMs
LM_TINY_CONF = CONF_DIR / "train_lm_tiny.yaml"
LM_RNN_CONF = {"lm": "seq_rnn", "lm_conf": {"rnn_type": "lstm", "unit": 16, "nlayers": 2}}


@pytest.fixture(scope="session")
def write_espnet_lm():
    """``write_espnet_lm(out, token_list, kind="transformer", seed=0, sharpen=1.0, bias=None)``: the
    files of a random tiny ESPnet LM run (``conf/train_lm_tiny.yaml``; ``kind="rnn"``: a 2-layer
    LSTM of 16 units), returns ``(config.yaml, lm.pth)`` (see :func:`_write_espnet_lm`)."""
    return _write_espnet_lm


def _write_espnet_lm(
    out: Path,
    token_list: List[str],
    kind: str = "transformer",
    seed: int = 0,
    sharpen: float = 1.0,
    bias: Dict[int, float] = None,
) -> tuple:
    """An ESPnet LM run's files (``config.yaml``, ``lm.pth``) as ``lm_train`` leaves them.

    ``sharpen`` scales the output layer so the random LM has opinions; ``bias`` makes it a
    unigram LM: output weights zero, logit ``bias[token]`` (0 for the others).
    """
    from espnet2.tasks.lm import LMTask

    out.mkdir(parents=True, exist_ok=True)
    conf = LM_TINY_CONF
    if kind == "rnn":
        conf = out / "rnn.yaml"
        conf.write_text(yaml.safe_dump({**yaml.safe_load(LM_TINY_CONF.read_text()), **LM_RNN_CONF}))
    elif kind != "transformer":
        raise ValueError(f"kind must be transformer or rnn, got {kind!r}")
    tokens = out / "tokens.txt"
    tokens.write_text("\n".join(token_list) + "\n", encoding="utf-8")
    args = LMTask.get_parser().parse_args(
        ["--config", str(conf), "--token_list", str(tokens), "--token_type", "char", "--output_dir", str(out)]
    )
    torch.manual_seed(seed)
    model = LMTask.build_model(args)
    head = model.lm.decoder
    with torch.no_grad():
        head.weight.mul_(sharpen)
        if bias is not None:
            head.weight.zero_()
            head.bias.zero_()
            for token, value in bias.items():
                head.bias[token] = value
    (out / "config.yaml").write_text(yaml.safe_dump(vars(args)), encoding="utf-8")
    torch.save(model.state_dict(), out / "lm.pth")
    return out / "config.yaml", out / "lm.pth"
