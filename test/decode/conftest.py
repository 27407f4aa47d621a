"""Decoding fixtures: the tiny model saved as files (random, and "forced" to known output), a toy data dir."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from espnet_usr2.tasks.usr2 import USR2Task
from espnet_usr2.utils.config import parse_training_args
from espnet_usr2.utils.toy_data import ToyCorpusSpec, write_toy_corpus


def save_model(model, args, out: Path, model_name: str = "model.pth") -> tuple:
    """``out/config.yaml`` (the training arguments) and ``out/<model_name>``, as training leaves them."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(yaml.safe_dump(vars(args)), encoding="utf-8")
    torch.save(model.state_dict(), out / model_name)
    return out / "config.yaml", out / model_name


def force_output(model, vocab: int) -> None:
    """The decoder emits <sos> -> a -> b -> <eos> whatever the input, every CTC frame says "c".

    All residual branches of the decoder are zeroed and its embeddings are one-hot, so the
    output head sees only the previous token.
    """
    with torch.no_grad():
        for layer in model.decoder.decoders:
            for lin in (layer.self_attn.linear_out, layer.src_attn.linear_out, layer.feed_forward.w_2):
                lin.weight.zero_()
                lin.bias.zero_()
        model.decoder.embed[0].weight.copy_(torch.eye(vocab, 64) * 50.0)
        for m in ("v", "a", "av"):
            head = model.decoder.output_head(m)
            head.weight.zero_()
            head.bias.zero_()
            for prev, nxt in ((vocab - 1, 2), (2, 3), (3, vocab - 1)):
                head.weight[nxt, prev] = 10.0
            ctc = model.ctc_head(m).ctc_lo
            ctc.weight.zero_()
            ctc.bias.zero_()
            ctc.bias[4] = 20.0


@pytest.fixture(scope="session")
def decode_setup(tmp_path_factory, tiny_config, token_list):
    """``random`` and ``forced`` (config.yaml, model.pth) pairs of the tiny model, a 4-utterance toy data dir."""
    root = tmp_path_factory.mktemp("decode_models")
    torch.manual_seed(0)
    args = parse_training_args(tiny_config, token_list, ["--token_type", "char"])
    model = USR2Task.build_model(args)
    random_files = save_model(model, args, root / "random")
    force_output(model, len(token_list))
    forced_files = save_model(model, args, root / "forced")
    data = root / "data"
    texts = write_toy_corpus(data, ToyCorpusSpec(num_utts=4, frames_per_symbol=3))
    return dict(root=root, random=random_files, forced=forced_files, data=data, texts=texts, args=args)
