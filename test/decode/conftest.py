"""Decoding fixtures: the tiny model saved as files (random, and "forced" to known output), a toy data dir."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Dict, Sequence, Tuple

import numpy as np
import pytest
import torch
import yaml

from espnet_usr2.tasks.config import parse_training_args
from espnet_usr2.tasks.usr2 import USR2Task

PACK_MODEL = Path(__file__).resolve().parents[2] / "egs2" / "TEMPLATE" / "usr2" / "pyscripts" / "pack_model.py"


def save_model(model, args, out: Path, model_name: str = "model.pth") -> tuple:
    """``out/config.yaml`` (the training arguments) and ``out/<model_name>``, as training leaves them."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(vars(args)), encoding="utf-8")
    torch.save(model.state_dict(), out / model_name)
    return out / "config.yaml", out / model_name


def make_successor_decoder(model, edges: Dict[str, Sequence[Tuple[int, int, float]]]) -> None:
    """Make the decoder a successor table: for modality ``m``, ``edges[m]`` lists ``(previous
    token, next token, weight)``; the memory (encoder output) is ignored.

    All residual branches of the decoder are zeroed and its embeddings are scaled one-hot
    vectors, so the output head sees only LayerNorm(one-hot of the previous token), which is
    sqrt(d - 1) at the hot unit (d = 64: 7.9): a weight w is a logit of about 7.9 w.
    """
    dec = model.decoder
    vocab, d = dec.embed[0].num_embeddings, dec.after_norm.normalized_shape[0]
    with torch.no_grad():
        for layer in dec.decoders:
            for lin in (layer.self_attn.linear_out, layer.src_attn.linear_out, layer.feed_forward.w_2):
                lin.weight.zero_()
                lin.bias.zero_()
        dec.embed[0].weight.copy_(torch.eye(vocab, d) * 50.0)
        for m, table in edges.items():
            head = dec.output_head(m)
            head.weight.zero_()
            head.bias.zero_()
            for prev, nxt, weight in table:
                head.weight[nxt, prev] += weight


@pytest.fixture(scope="session")
def successor_decoder():
    """:func:`make_successor_decoder`, for the tests that force a decoder's output."""
    return make_successor_decoder


def force_output(model, vocab: int) -> None:
    """The decoder emits <sos> -> a -> b -> <eos> whatever the input, every CTC frame says "c"."""
    chain = ((vocab - 1, 2, 10.0), (2, 3, 10.0), (3, vocab - 1, 10.0))
    make_successor_decoder(model, {m: chain for m in ("v", "a", "av")})
    with torch.no_grad():
        for m in ("v", "a", "av"):
            ctc = model.ctc_head(m).ctc_lo
            ctc.weight.zero_()
            ctc.bias.zero_()
            ctc.bias[4] = 20.0


@pytest.fixture(scope="session")
def decode_setup(write_toy_corpus, tmp_path_factory, tiny_config, token_list):
    """``random`` and ``forced`` (config.yaml, model.pth) pairs of the tiny model, a 4-utterance toy data dir."""
    root = tmp_path_factory.mktemp("decode_models")
    torch.manual_seed(0)
    args = parse_training_args(tiny_config, token_list, ["--token_type", "char"])
    model = USR2Task.build_model(args)
    random_files = save_model(model, args, root / "random")
    force_output(model, len(token_list))
    forced_files = save_model(model, args, root / "forced")
    data = root / "data"
    texts = write_toy_corpus(data, num_utts=4, frames_per_symbol=3)
    return dict(root=root, random=random_files, forced=forced_files, data=data, texts=texts, args=args)


@pytest.fixture(scope="session")
def semi_teacher_setup(tmp_path_factory, tiny_config, token_list):
    """(config.yaml, model.pth) of a semi-supervised tiny model whose EMA teacher is forced (as
    ``forced``: CTC "c", decoder "ab") and whose student has random weights."""
    torch.manual_seed(1)
    args = parse_training_args(tiny_config, token_list, ["--token_type", "char", "--semi", "usr2"])
    model = USR2Task.build_model(args)
    force_output(model.teacher.model, len(token_list))
    model.teacher.initialized.fill_(True)
    return save_model(model, args, tmp_path_factory.mktemp("semi_teacher"))


@pytest.fixture(scope="session")
def packed_recipe(tmp_path_factory, decode_setup):
    """A recipe dir with exp/usr2_tiny (the forced model under the name the tiny config selects,
    valid.loss.best.pth), conf/decode_greedy_att.yaml, and the zip stage 14 packs of them."""
    recipe = tmp_path_factory.mktemp("recipe")
    config, model_file = decode_setup["forced"]
    exp = recipe / "exp" / "usr2_tiny"
    exp.mkdir(parents=True)
    (exp / "config.yaml").write_text(Path(config).read_text())
    (exp / "valid.loss.best.pth").write_bytes(Path(model_file).read_bytes())
    conf = recipe / "conf" / "decode_greedy_att.yaml"
    conf.parent.mkdir()
    conf.write_text("method: greedy_att\nbatch_size: 4\n")
    zip_path = exp / "packed" / "usr2_tiny.zip"
    proc = subprocess.run(
        [
            sys.executable,
            str(PACK_MODEL),
            "--train_config",
            "exp/usr2_tiny/config.yaml",
            "--model_file",
            "exp/usr2_tiny/valid.loss.best.pth",
            "--outpath",
            str(zip_path),
            "--option",
            "conf/decode_greedy_att.yaml",
        ],
        cwd=recipe,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    return dict(root=recipe, exp=exp, zip=zip_path, decode_config=conf)


@pytest.fixture(scope="session")
def speech_with_pauses():
    """``speech_with_pauses(spans, total_s, seed=0)``: 16 kHz float32 audio, loud noise-like
    'speech' in each (start, end) span in seconds, a quiet background (-50 dBFS) elsewhere."""

    def make(spans, total_s, seed=0):
        rng = np.random.default_rng(seed)
        audio = 0.003 * rng.standard_normal(int(total_s * 16000))
        for start, end in spans:
            s, e = int(start * 16000), int(end * 16000)
            audio[s:e] += 0.3 * rng.standard_normal(e - s) * np.sin(np.linspace(0, 40 * np.pi, e - s)) ** 2
        return audio.astype(np.float32)

    return make
