"""Search algorithms: forced outputs, fast beam search == ESPnet's BatchBeamSearch, the pieces."""

from __future__ import annotations

from typing import Dict, List

import pytest
import torch

from espnet_usr2.decode.espnet_beam import espnet_beam_search
from espnet_usr2.decode.fast_beam import fast_beam_search
from espnet_usr2.decode.greedy import greedy_attention, greedy_ctc
from espnet_usr2.decode.hyps import DecodeOptions, Hyp, length_bounds
from espnet_usr2.model.incremental import IncrementalDecoder, UnsupportedDecoderError
from espnet_usr2.tasks.config import build_model_from_config

BLANK = 0


@pytest.fixture(scope="module")
def tiny(tiny_config, token_list):
    torch.manual_seed(0)
    return build_model_from_config(tiny_config, token_list).eval()


@pytest.fixture(scope="module")
def ids(token_list) -> Dict[str, int]:
    return {t: i for i, t in enumerate(token_list)}


# ---------------------------------------------------------------------------- forced model

# per modality: the frame labels the CTC head is forced to, and the decoder's token chain
FORCED_FRAMES = {"v": "dd-e", "a": "aa-b-bcc", "av": "a-bc"}
FORCED_CHAIN = {"v": "de", "a": "abbc", "av": "abc"}


def _force_model(model, ids: Dict[str, int], successor_decoder) -> None:
    """Make the decoder a successor table per modality and each CTC head read its input frame.

    Decoder: all residual branches are zeroed, so the last hidden state is
    LayerNorm(embedding(prev token) + positional encoding); embeddings are scaled one-hot
    vectors, so the output head maps the previous token to the next one of FORCED_CHAIN
    (a chain with a repeated token, "abbc", is ambiguous for the decoder and only used
    for CTC).
    CTC: encoder frames are given directly as one-hot vectors and the CTC projection is
    a scaled identity, so frame t's best token is FORCED_FRAMES[t].
    """
    vocab, d = len(model.token_list), model.decoder.after_norm.normalized_shape[0]
    seqs = {m: [model.sos] + [ids[c] for c in chain] + [model.eos] for m, chain in FORCED_CHAIN.items()}
    successor_decoder(
        model, {m: [(prev, nxt, 10.0) for prev, nxt in zip(seq[:-1], seq[1:])] for m, seq in seqs.items()}
    )
    with torch.no_grad():
        for m in FORCED_CHAIN:
            ctc = model.ctc_head(m).ctc_lo
            ctc.weight.copy_(torch.eye(vocab, d) * 10.0)
            ctc.bias.zero_()


def _forced_enc(model, ids, modality: str, d: int) -> torch.Tensor:
    labels = [BLANK if c == "-" else ids[c] for c in FORCED_FRAMES[modality]]
    enc = torch.zeros(1, len(labels), d)
    enc[0, torch.arange(len(labels)), torch.tensor(labels)] = 1.0
    return enc


@pytest.fixture(scope="module")
def forced(tiny_config, token_list, ids, successor_decoder):
    model = build_model_from_config(tiny_config, token_list).eval()
    _force_model(model, ids, successor_decoder)
    return model


def _text(hyp: Hyp, model) -> str:
    return "".join(model.token_list[t] for t in hyp.token_ids(model.sos, model.eos))


def test_forced_greedy_ctc(forced, ids):
    for m in FORCED_FRAMES:
        enc = _forced_enc(forced, ids, m, 64)
        hyp = greedy_ctc(forced, enc, torch.tensor([enc.size(1)]), m, forced.sos, forced.eos)[0][0]
        expected = {"v": "de", "a": "abbc", "av": "abc"}[m]  # repeats merged, blank separates "b-b"
        assert _text(hyp, forced) == expected


def test_forced_greedy_attention_follows_modality_head(forced, ids):
    enc = torch.randn(3, 6, 64)  # the forced decoder ignores the memory
    lens = torch.tensor([6, 4, 5])
    for m, chain in FORCED_CHAIN.items():
        if len(set(chain)) < len(chain):
            continue  # a repeated token makes the successor table ambiguous (checked with CTC below)
        hyps = greedy_attention(forced, enc, lens, m, DecodeOptions(method="greedy_att"), forced.sos, forced.eos)
        assert [_text(h[0], forced) for h in hyps] == [chain] * 3


@pytest.mark.parametrize("impl", ["fast", "espnet"])
def test_forced_beam_search(forced, ids, impl):
    for m in ("v", "av"):
        enc = _forced_enc(forced, ids, m, 64)
        lens = torch.tensor([enc.size(1)])
        opts = DecodeOptions(beam_size=3, ctc_weight=0.3, nbest=2)
        search = fast_beam_search if impl == "fast" else espnet_beam_search
        extra = () if impl == "fast" else (len(forced.token_list),)
        args = (forced, enc, lens, m, opts, forced.sos, forced.eos, *extra)
        nbest = search(*args)[0]
        assert _text(nbest[0], forced) == FORCED_CHAIN[m]
        assert len(nbest) == 2 and nbest[0].score >= nbest[1].score


def test_forced_greedy_attention_minlen_maxlen(forced):
    enc, lens = torch.randn(1, 10, 64), torch.tensor([10])
    # the chain "de" would end after 2 tokens; minlen 4 forbids <eos> until then
    long = greedy_attention(
        forced, enc, lens, "v", DecodeOptions(method="greedy_att", minlenratio=-4), forced.sos, forced.eos
    )[0][0]
    assert len(long.yseq) - 2 >= 4 and long.yseq[1:3] == [5, 6]  # <sos> d e ... <eos>
    short = greedy_attention(
        forced, enc, lens, "v", DecodeOptions(method="greedy_att", maxlenratio=-1), forced.sos, forced.eos
    )[0][0]
    assert _text(short, forced) == "d"


# ---------------------------------------------------------------------------- fast == ESPnet


def _encode(model, lengths: List[int], seed: int):
    g = torch.Generator().manual_seed(seed)
    lens = torch.tensor(lengths)
    T = max(lengths)
    speech = torch.randn(len(lengths), T * 640, generator=g)
    video = torch.rand(len(lengths), T, 96, 96, generator=g) * 255
    for i, n in enumerate(lengths):
        speech[i, n * 640 :] = 0
        video[i, n:] = 0
    with torch.no_grad():
        return model.encode(speech, lens * 640, video, lens, modalities=["v", "a", "av"], augment=False)


@pytest.mark.parametrize(
    "opts",
    [
        DecodeOptions(beam_size=4, ctc_weight=0.3, maxlenratio=0.0, nbest=3),
        DecodeOptions(beam_size=5, ctc_weight=0.5, penalty=0.5, maxlenratio=0.6, minlenratio=0.2, nbest=2),
        DecodeOptions(beam_size=3, ctc_weight=0.0, maxlenratio=0.0),
        DecodeOptions(beam_size=6, ctc_weight=0.1, nbest=2),  # the release's length rule: T steps, no end detection
        DecodeOptions(beam_size=5, ctc_weight=0.1, maxlenratio=0.4, nbest=2),  # the release's noise setting
    ],
    ids=["enddetect", "penalty-minmax", "attention-only", "released-default", "released-noise"],
)
def test_fast_matches_espnet_batch_beam_search(tiny, opts):
    encoded = _encode(tiny, [7, 12, 5, 9], seed=1)
    vocab = len(tiny.token_list)
    for m, (enc, lens) in encoded.items():
        fast = fast_beam_search(tiny, enc, lens, m, opts, tiny.sos, tiny.eos)
        ref = espnet_beam_search(tiny, enc, lens, m, opts, tiny.sos, tiny.eos, vocab)
        for b, (f, r) in enumerate(zip(fast, ref)):
            assert f[0].yseq == r[0].yseq, f"{m} utterance {b}: 1-best differs"
            assert [h.yseq for h in f] == [h.yseq for h in r], f"{m} utterance {b}: n-best differs"
            assert f[0].score == pytest.approx(r[0].score, abs=1e-3)


def test_released_greedy_setting_matches_espnet_beam_of_one(tiny):
    """The released long / OOD decoding is ESPnet's beam search with beam 1, no CTC and
    maxlenratio 0.4 (conf/decode_ood.yaml): the batched greedy search gives the same output."""
    encoded = _encode(tiny, [30, 12, 21], seed=4)
    vocab = len(tiny.token_list)
    greedy_opts = DecodeOptions(method="greedy_att", maxlenratio=0.4)
    beam_opts = DecodeOptions(beam_size=1, ctc_weight=0.0, maxlenratio=0.4)
    for m, (enc, lens) in encoded.items():
        greedy = greedy_attention(tiny, enc, lens, m, greedy_opts, tiny.sos, tiny.eos)
        ref = espnet_beam_search(tiny, enc, lens, m, beam_opts, tiny.sos, tiny.eos, vocab)
        for b, (g, r) in enumerate(zip(greedy, ref)):
            ids = r[0].token_ids(tiny.sos, tiny.eos)
            assert g[0].token_ids(tiny.sos, tiny.eos) == ids, f"{m} utterance {b}"
            assert len(ids) <= int(0.4 * int(lens[b]))
            assert g[0].score == pytest.approx(r[0].score, abs=1e-3)


def test_fast_beam_search_batch_independent(tiny):
    """An utterance decodes to the same 1-best alone and inside a padded batch."""
    encoded = _encode(tiny, [8, 13, 6], seed=2)
    enc, lens = encoded["a"]
    opts = DecodeOptions(beam_size=4, ctc_weight=0.3)
    batch = fast_beam_search(tiny, enc, lens, "a", opts, tiny.sos, tiny.eos)
    for b in range(3):
        alone = fast_beam_search(tiny, enc[b : b + 1, : lens[b]], lens[b : b + 1], "a", opts, tiny.sos, tiny.eos)
        assert alone[0][0].yseq == batch[b][0].yseq


# ---------------------------------------------------------------------------- pieces


def test_incremental_decoder_matches_forward_one_step(tiny):
    from espnet.nets.pytorch_backend.transformer.mask import subsequent_mask

    g = torch.Generator().manual_seed(3)
    memory, lens = torch.randn(2, 7, 64, generator=g), torch.tensor([7, 4])
    inc = IncrementalDecoder(tiny.decoder, memory, lens, "av", hyps_per_utt=2)
    prefixes = torch.tensor([[9, 2, 3], [9, 4, 4], [9, 5, 6], [9, 7, 2]])
    for step in range(prefixes.size(1)):
        logp = inc.step(prefixes[:, step])
    mem_rows = memory.repeat_interleave(2, 0)
    mask = (torch.arange(7)[None] < lens.repeat_interleave(2)[:, None])[:, None, :]
    with torch.no_grad():
        ref, _ = tiny.decoder.forward_one_step(prefixes, subsequent_mask(3).unsqueeze(0), mem_rows, mask, modality="av")
    torch.testing.assert_close(logp, ref, atol=1e-5, rtol=1e-5)


def test_unsupported_decoder_is_refused(tiny_config, token_list):
    model = build_model_from_config(tiny_config, token_list)
    model.decoder.decoders[0].concat_after = True
    with pytest.raises(UnsupportedDecoderError, match="concat_after"):
        IncrementalDecoder(model.decoder, torch.zeros(1, 3, 64), torch.tensor([3]), "a", 1)


def test_length_bounds_follow_espnet():
    assert length_bounds(50, 0.0, 0.0) == (50, 0)
    assert length_bounds(50, -7, -3) == (7, 3)
    assert length_bounds(50, 0.3, 0.1) == (15, 5)
    assert length_bounds(2, 0.1, 0.0) == (1, 0)
    assert length_bounds(50, 1.0, 0.0) == (50, 0)  # the released default: T tokens, no end detection
    assert DecodeOptions().maxlenratio == 1.0 and DecodeOptions().beam_size == 40


def test_options_are_validated():
    with pytest.raises(ValueError, match="greedy_ctc"):
        DecodeOptions(ctc_weight=1.0)
    with pytest.raises(ValueError, match="method"):
        DecodeOptions(method="sampling")
    with pytest.raises(ValueError, match="nbest"):
        DecodeOptions(beam_size=2, nbest=3)
