"""Attention pseudo-labels of the teacher decoder: CTC-driven teacher forcing (eq. 4) and
AR greedy decoding with / without key-value cache."""

import pytest
import torch

from espnet_usr2.semi.ar_pseudo_labels import ARDecodingConfig, ar_greedy_pseudo_labels
from espnet_usr2.semi.teacher_forcing import append_eos, ctc_driven_teacher_forcing, prepend_sos
from espnet_usr2.tasks.config import build_model_from_config


@pytest.fixture(scope="module")
def tiny(tiny_config, token_list):
    torch.manual_seed(0)
    model = build_model_from_config(tiny_config, token_list)
    return model.eval()


def _memory(batch_lengths, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor(batch_lengths)
    memory = torch.randn(len(batch_lengths), max(batch_lengths), d, generator=g)
    for b, n in enumerate(batch_lengths):
        memory[b, n:] = 0.0
    return memory, lengths


def test_prepend_sos_and_append_eos():
    tokens, lengths = torch.tensor([[3, 4, 5], [6, -1, -1], [-1, -1, -1]]), torch.tensor([3, 1, 0])
    ys_in, ys_lens = prepend_sos(tokens, lengths, sos=9, pad=9)
    assert ys_in.tolist() == [[9, 3, 4, 5], [9, 6, 9, 9], [9, 9, 9, 9]] and ys_lens.tolist() == [4, 2, 1]
    assert append_eos(tokens, lengths, eos=9).tolist() == [[3, 4, 5, 9], [6, 9, -1, -1], [9, -1, -1, -1]]


def test_teacher_forcing_gives_L_plus_1_aligned_targets_equal_to_stepwise_argmax(tiny):
    memory, mem_lens = _memory([12, 9, 7], tiny.encoder.output_size())
    ctc_tokens = torch.tensor([[3, 4, 5, 3], [6, 2, -1, -1], [-1, -1, -1, -1]])
    ctc_lens = torch.tensor([4, 2, 0])  # the last one is an empty CTC PL (all-blank)
    pl = ctc_driven_teacher_forcing(
        tiny.decoder, memory, mem_lens, ctc_tokens, ctc_lens, tiny.sos, tiny.eos, threshold=0.8, modality="av"
    )
    assert pl.tokens.shape == (3, 5)
    assert pl.lengths.tolist() == [5, 3, 1]
    ys_in, _ = prepend_sos(ctc_tokens, ctc_lens, tiny.sos, tiny.eos)
    for b in range(3):
        n = int(mem_lens[b])
        for pos in range(int(pl.lengths[b])):
            prefix = ys_in[b : b + 1, : pos + 1]
            mask = torch.tril(torch.ones(1, pos + 1, pos + 1, dtype=torch.bool))
            with torch.no_grad():
                logp, _ = tiny.decoder.forward_one_step(
                    prefix, mask, memory[b : b + 1, :n], torch.ones(1, 1, n, dtype=torch.bool), modality="av"
                )
            assert int(logp.argmax(-1)) == int(pl.tokens[b, pos])
            assert float(logp.max().exp()) == pytest.approx(float(pl.confidence[b, pos]), abs=1e-5)
        assert (pl.tokens[b, int(pl.lengths[b]) :] == -1).all()
    assert torch.equal(pl.mask, (pl.confidence >= 0.8) & (pl.tokens != -1))


def test_teacher_forcing_uses_the_requested_modality_head(tiny):
    memory, mem_lens = _memory([8], tiny.encoder.output_size(), seed=1)
    tokens, lens = torch.tensor([[3, 4]]), torch.tensor([2])
    av = ctc_driven_teacher_forcing(tiny.decoder, memory, mem_lens, tokens, lens, tiny.sos, tiny.eos, modality="av")
    v = ctc_driven_teacher_forcing(tiny.decoder, memory, mem_lens, tokens, lens, tiny.sos, tiny.eos, modality="v")
    assert not torch.allclose(av.confidence, v.confidence)


def test_ar_greedy_with_cache_equals_full_recompute(tiny):
    memory, mem_lens = _memory([30, 21, 11], tiny.encoder.output_size(), seed=2)
    # a larger eos bias makes the tiny random decoder stop at different steps per row
    head = tiny.decoder.output_head("av")
    saved = head.bias.detach().clone()
    try:
        with torch.no_grad():
            head.bias[tiny.eos] += 1.5
        cfg = ARDecodingConfig(max_len_ratio=0.5)
        cached = ar_greedy_pseudo_labels(tiny.decoder, memory, mem_lens, tiny.sos, tiny.eos, cfg, use_cache=True)
        full = ar_greedy_pseudo_labels(tiny.decoder, memory, mem_lens, tiny.sos, tiny.eos, cfg, use_cache=False)
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)
    assert torch.equal(cached.tokens, full.tokens)
    assert torch.equal(cached.lengths, full.lengths)
    torch.testing.assert_close(cached.confidence, full.confidence, atol=1e-5, rtol=1e-5)
    assert (cached.lengths <= torch.tensor([15, 10, 5])).all()


class ScriptedDecoder:
    """Stand-in decoder whose next token for row b after l inputs is ``script[b][l-1]``."""

    def __init__(self, script, vocab, prob=0.9):
        self.script, self.vocab, self.prob = script, vocab, prob
        self.calls = 0

    def _logp(self, ys):
        out = torch.full((ys.size(0), self.vocab), (1 - self.prob) / (self.vocab - 1))
        for b in range(ys.size(0)):
            row = self.script[b]
            out[b, row[min(ys.size(1) - 1, len(row) - 1)]] = self.prob
        return out.log()

    def forward_one_step(self, ys, tgt_mask, memory, memory_mask, *, cache=None, modality=None):
        self.calls += 1
        return self._logp(ys), []

    def __call__(self, memory, memory_lens, ys, ys_lens, modality=None):
        self.calls += 1
        return self._logp(ys)[:, None, :].expand(-1, ys.size(1), -1), ys_lens


@pytest.mark.parametrize("use_cache", [True, False])
def test_ar_greedy_stops_at_eos_per_sequence_and_at_the_step_limit(use_cache):
    eos = 7
    script = [[3, 4, eos, 5, 5, 5], [eos, 3, 3, 3, 3, 3], [2, 2, 2, 2, 2, 2]]
    dec = ScriptedDecoder(script, vocab=8)
    memory = torch.zeros(3, 20, 4)
    cfg = ARDecodingConfig(max_len_ratio=0.2)  # T // 5 -> 4, 4, 2 steps
    pl = ar_greedy_pseudo_labels(
        dec, memory, torch.tensor([20, 20, 10]), sos=eos, eos=eos, config=cfg, threshold=0.85, use_cache=use_cache
    )
    assert pl.tokens.tolist() == [[3, 4, eos], [eos, -1, -1], [2, 2, -1]]
    assert pl.lengths.tolist() == [3, 1, 2]
    assert dec.calls == 3  # all rows finished after 3 steps: no 4th step
    torch.testing.assert_close(pl.confidence[pl.tokens != -1], torch.full((6,), 0.9))
    assert (pl.confidence[pl.tokens == -1] == 0).all()
    assert pl.mask.tolist() == [[True, True, True], [True, False, False], [True, True, False]]


def test_step_limits_config():
    lens = torch.tensor([0, 4, 5, 10, 24, 100])
    assert ARDecodingConfig().step_limits(lens).tolist() == [1, 1, 1, 2, 4, 20]  # T // 5, at least 1
    assert ARDecodingConfig(max_len_ratio=0.5, min_len=0, max_len=10).step_limits(lens).tolist() == [0, 2, 2, 5, 10, 10]
    with pytest.raises(ValueError, match="max_len_ratio"):
        ARDecodingConfig(max_len_ratio=-1)
    with pytest.raises(ValueError, match="max_len"):
        ARDecodingConfig(min_len=3, max_len=2)


def test_step_limit_per_utterance_or_per_padded_batch_as_usr():
    lengths = torch.tensor([50, 12, 30])
    assert ARDecodingConfig(0.2).step_limits(lengths).tolist() == [10, 2, 6]
    assert ARDecodingConfig(0.2, limit_over="batch").step_limits(lengths).tolist() == [10, 10, 10]  # USR: T_max // 5
    with pytest.raises(ValueError, match="limit_over"):
        ARDecodingConfig(limit_over="corpus")
