"""Shallow fusion with an ESPnet LM: both beam searches agree, a forced LM changes the answer
as its weights say, lm_weight 0 changes nothing, the LM's token list must be the model's."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Dict, List

import pytest
import torch

from espnet_usr2.bin import usr2_inference
from espnet_usr2.decode.espnet_beam import espnet_beam_search
from espnet_usr2.decode.fast_beam import fast_beam_search
from espnet_usr2.decode.hyps import DecodeOptions
from espnet_usr2.inference.speech2text import USR2Speech2Text, decode_options_from_yaml, lm_files_from_yaml
from espnet_usr2.tasks.config import build_model_from_config
from espnet_usr2.utils.espnet_lm import LMMismatchError, load_lm


@pytest.fixture(scope="module")
def tiny(tiny_config, token_list):
    torch.manual_seed(0)
    return build_model_from_config(tiny_config, token_list).eval()


@pytest.fixture(scope="module")
def lms(tmp_path_factory, token_list, write_espnet_lm) -> Dict[str, torch.nn.Module]:
    """Random tiny Transformer and LSTM LMs with the model's token list, loaded as decoding loads them."""
    root = tmp_path_factory.mktemp("lms")
    out = {}
    for name in ("transformer", "rnn"):
        config, lm_file = write_espnet_lm(root / name, token_list, kind=name, seed=1, sharpen=8.0)
        out[name] = load_lm(config, lm_file, token_list)
    return out


def _encode(model, lengths: List[int], seed: int):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    speech = torch.randn(len(lengths), max(lengths) * 640, generator=g)
    video = torch.rand(len(lengths), max(lengths), 96, 96, generator=g) * 255
    with torch.no_grad():
        return model.encode(speech, lens * 640, video, lens, modalities=["v", "av"], augment=False)


@pytest.mark.parametrize("lm_name", ["transformer", "rnn"])
@pytest.mark.parametrize(
    "opts",
    [
        DecodeOptions(beam_size=4, ctc_weight=0.3, maxlenratio=0.0, nbest=2, lm_weight=0.5),
        DecodeOptions(beam_size=5, ctc_weight=0.1, penalty=0.3, maxlenratio=0.6, lm_weight=1.0),
    ],
    ids=["enddetect", "released-length-rule"],
)
def test_fast_matches_espnet_with_lm(tiny, lms, lm_name, opts):
    """Same n-best from the batched search (LM states of utterances x hypotheses) and from
    ESPnet's BatchBeamSearch with the LM as a scorer; and the LM does change the output."""
    lm = lms[lm_name]
    vocab = len(tiny.token_list)
    changed = 0
    for m, (enc, lens) in _encode(tiny, [7, 12, 5], seed=1).items():
        fast = fast_beam_search(tiny, enc, lens, m, opts, tiny.sos, tiny.eos, lm=lm)
        ref = espnet_beam_search(tiny, enc, lens, m, opts, tiny.sos, tiny.eos, vocab, lm=lm)
        plain = fast_beam_search(
            tiny, enc, lens, m, DecodeOptions(**{**vars(opts), "lm_weight": 0.0}), tiny.sos, tiny.eos
        )
        for b, (f, r) in enumerate(zip(fast, ref)):
            assert [h.yseq for h in f] == [h.yseq for h in r], f"{m} utterance {b}: n-best differs"
            assert f[0].score == pytest.approx(r[0].score, abs=1e-3)
            changed += f[0].yseq != plain[b][0].yseq
    assert changed, "the LM changed no hypothesis: the test would not see a missing LM"


# ---------------------------------------------------------------------------- forced LM


@pytest.mark.parametrize("impl", ["fast", "espnet"])
def test_forced_lm_changes_the_hypothesis(tiny_config, token_list, write_espnet_lm, tmp_path, successor_decoder, impl):
    """Decoder: <sos> -> d (weight 10) or f (9), d|f -> e, e -> <eos>, so "de" beats "fe" by
    (10 - 9) * sqrt(63) = 7.9 nats (conftest.make_successor_decoder). A unigram LM preferring
    "f" by 10 nats over every other token turns "de" into "fe" at lm_weight 1 (7.9 - 10 < 0),
    not at lm_weight 0.5 (7.9 - 5 > 0)."""
    ids = {t: i for i, t in enumerate(token_list)}
    model = build_model_from_config(tiny_config, token_list).eval()
    sos, eos = model.sos, model.eos
    successor_decoder(
        model,
        {
            "v": [
                (sos, ids["d"], 10.0),
                (sos, ids["f"], 9.0),
                (ids["d"], ids["e"], 10.0),
                (ids["f"], ids["e"], 10.0),
                (ids["e"], eos, 10.0),
            ]
        },
    )
    lm = load_lm(*write_espnet_lm(tmp_path, token_list, bias={ids["f"]: 10.0}), token_list)
    enc, lens = torch.randn(2, 6, 64), torch.tensor([6, 5])  # the forced decoder ignores the memory

    def text(lm_weight: float) -> List[str]:
        opts = DecodeOptions(beam_size=3, ctc_weight=0.0, lm_weight=lm_weight)
        if impl == "fast":
            nbest = fast_beam_search(model, enc, lens, "v", opts, model.sos, model.eos, lm=lm)
        else:
            nbest = espnet_beam_search(model, enc, lens, "v", opts, model.sos, model.eos, len(token_list), lm=lm)
        return ["".join(token_list[t] for t in h[0].token_ids(model.sos, model.eos)) for h in nbest]

    assert text(0.0) == ["de", "de"]
    assert text(0.5) == ["de", "de"]
    assert text(1.0) == ["fe", "fe"]


# ---------------------------------------------------------------------------- USR2Speech2Text


def test_speech2text_lm_weight_zero_is_todays_output(decode_setup, token_list, write_espnet_lm, tmp_path, caplog):
    """With lm_weight 0 the LM files change nothing (the LM is not even loaded); greedy methods
    say they ignore the LM; with a weight the beam search uses it."""
    config, model_file = decode_setup["random"]
    lm_config, lm_file = write_espnet_lm(tmp_path / "lm", token_list, seed=2, sharpen=8.0)
    g = torch.Generator().manual_seed(5)
    speech, video = torch.randn(6 * 640, generator=g), torch.rand(6, 96, 96, generator=g) * 255

    def decode(**kw):
        s2t = USR2Speech2Text(config, model_file, modalities=["av"], beam_size=4, ctc_weight=0.3, **kw)
        return s2t, s2t(speech=speech, video=video)["av"][0]

    _, plain = decode()
    s2t, zero = decode(lm_train_config=lm_config, lm_file=lm_file, lm_weight=0.0)
    assert s2t.lm is None and zero.token_int == plain.token_int and zero.score == plain.score
    s2t, fused = decode(lm_train_config=lm_config, lm_file=lm_file, lm_weight=2.0)
    assert s2t.lm is not None and fused.score != plain.score
    with caplog.at_level(logging.WARNING):
        s2t, _ = decode(lm_train_config=lm_config, lm_file=lm_file, lm_weight=0.5, method="greedy_ctc")
    assert s2t.lm is None and "ignores the language model" in caplog.text


def test_lm_files_and_weight_from_decoding_yaml(tmp_path):
    conf = tmp_path / "decode_lm.yaml"
    conf.write_text(
        "beam_size: 3\nlm_weight: 0.4\nlm_train_config: exp/lm/config.yaml\n"
        "lm_file: exp/lm/valid.loss.ave.pth\nbatch_size: 2\n"
    )
    assert decode_options_from_yaml(conf).lm_weight == 0.4
    assert lm_files_from_yaml(conf) == {"lm_train_config": "exp/lm/config.yaml", "lm_file": "exp/lm/valid.loss.ave.pth"}


def test_bad_lm_inputs_are_named(decode_setup, token_list, write_espnet_lm, tmp_path):
    config, model_file = decode_setup["random"]
    other = token_list[:-2] + ["<x>", token_list[-1]]
    lm_config, lm_file = write_espnet_lm(tmp_path / "other", other)
    with pytest.raises(LMMismatchError, match=r"token \d+ is '<x>' in the LM and '<space>' in the model"):
        load_lm(lm_config, lm_file, token_list)
    with pytest.raises(LMMismatchError, match="tokens in the LM"):
        load_lm(*write_espnet_lm(tmp_path / "short", token_list[:-2] + token_list[-1:]), token_list)
    with pytest.raises(ValueError, match="needs a language model"):
        USR2Speech2Text(config, model_file, lm_weight=0.5)
    with pytest.raises(FileNotFoundError, match="lm_file .*missing.pth"):
        load_lm(lm_config, tmp_path / "missing.pth", other)
    with pytest.raises(ValueError, match="lm_weight must be >= 0"):
        DecodeOptions(lm_weight=-1.0)


# ---------------------------------------------------------------------------- usr2_inference


def _inference(setup, out: Path, *extra: str) -> Dict[str, str]:
    config, model_file = setup["forced"]
    data = setup["data"]
    usr2_inference.main(
        [
            "--train_config",
            str(config),
            "--model_file",
            str(model_file),
            "--output_dir",
            str(out),
            "--data_path_and_name_and_type",
            f"{data}/wav.scp,speech,sound",
            "--data_path_and_name_and_type",
            f"{data}/video.scp,video,roi_video",
            "--log_level",
            "WARNING",
            "--num_workers",
            "0",
            "--modalities",
            "v",
            *extra,
        ]
    )
    lines = (out / "video" / "text").read_text(encoding="utf-8").splitlines()
    return {k: (rest or [""])[0] for k, *rest in (line.split(maxsplit=1) for line in lines)}


def test_usr2_inference_takes_the_lm_from_its_yaml(decode_setup, token_list, write_espnet_lm, tmp_path, capsys):
    """The forced model says "ab"; an LM that wants "c" (bias 200 > the decoder's 79-nat
    margin) wins in both beam paths when the decoding YAML names it and gives it weight 1."""
    ids = {t: i for i, t in enumerate(token_list)}
    lm_config, lm_file = write_espnet_lm(tmp_path / "lm", token_list, bias={ids["c"]: 200.0})
    conf = tmp_path / "decode_lm.yaml"
    conf.write_text(
        f"beam_size: 2\nctc_weight: 0.1\nmaxlenratio: -3\nlm_weight: 1.0\nbatch_size: 2\n"
        f"lm_train_config: {lm_config}\nlm_file: {lm_file}\n"
    )
    assert set(_inference(decode_setup, tmp_path / "plain", "--beam_size", "2").values()) == {"ab"}
    fast = _inference(decode_setup, tmp_path / "fast", "--config", str(conf))
    ref = _inference(decode_setup, tmp_path / "ref", "--config", str(conf), "--beam_impl", "espnet")
    assert set(fast.values()) == {"ccc"} and ref == fast
    with pytest.raises(SystemExit):
        _inference(decode_setup, tmp_path / "bad", "--lm_weight", "0.5")
    assert "lm_weight 0.5 needs a language model" in capsys.readouterr().err
