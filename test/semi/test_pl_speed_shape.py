"""The shape of the pseudo-labelling work (no timing): CTC-driven teacher forcing runs the
teacher decoder ONCE, in parallel, whatever the PL length; AR greedy runs it once per step.

Counted at the decoder's first layer (a forward hook), so both the parallel ``forward`` and
ESPnet's incremental ``forward_one_step`` are seen, and at the two entry points."""

import pytest
import torch

from espnet_usr2.semi.ar_pseudo_labels import ARDecodingConfig, ar_greedy_pseudo_labels
from espnet_usr2.semi.ctc_pseudo_labels import ctc_pseudo_labels
from espnet_usr2.semi.teacher_forcing import ctc_driven_teacher_forcing
from espnet_usr2.tasks.config import build_model_from_config


@pytest.fixture(scope="module")
def tiny(tiny_config, token_list):
    torch.manual_seed(0)
    model = build_model_from_config(tiny_config, token_list).eval()
    # never emit <eos>: AR decoding then runs to its step limit (a random model's worst case)
    with torch.no_grad():
        model.decoder.output_head("av").bias[model.eos] -= 1e4
    return model


class _Counter:
    """Counts decoder layer-0 executions and calls of ``forward`` / ``forward_one_step``."""

    def __init__(self, decoder, monkeypatch):
        self.layer0 = self.forward = self.one_step = 0
        self.handle = decoder.decoders[0].register_forward_hook(self._hook)
        forward, one_step = decoder.forward, decoder.forward_one_step

        def counted_forward(*args, **kwargs):
            self.forward += 1
            return forward(*args, **kwargs)

        def counted_one_step(*args, **kwargs):
            self.one_step += 1
            return one_step(*args, **kwargs)

        monkeypatch.setattr(decoder, "forward", counted_forward)
        monkeypatch.setattr(decoder, "forward_one_step", counted_one_step)

    def _hook(self, *_):
        self.layer0 += 1


def _memory(n_frames, batch, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n_frames, d, generator=g), torch.full((batch,), n_frames)


@pytest.fixture
def counted(tiny, monkeypatch):
    counter = _Counter(tiny.decoder, monkeypatch)
    yield counter
    counter.handle.remove()


@pytest.mark.parametrize("pl_length", [0, 1, 7, 30])
def test_ctc_driven_pl_is_one_parallel_decoder_pass_whatever_its_length(tiny, counted, pl_length):
    memory, lengths = _memory(150, 3, tiny.encoder.output_size())
    tokens = torch.randint(2, len(tiny.token_list) - 2, (3, max(pl_length, 1)))
    tokens[:, pl_length:] = -1  # L = 0: an all-blank CTC PL
    pl = ctc_driven_teacher_forcing(
        tiny.decoder, memory, lengths, tokens, torch.full((3,), pl_length), tiny.sos, tiny.eos, modality="av"
    )
    assert pl.lengths.tolist() == [pl_length + 1] * 3  # L + 1 targets ...
    assert (counted.forward, counted.one_step, counted.layer0) == (1, 0, 1)  # ... from one decoder pass


@pytest.mark.parametrize("n_frames", [10, 75])
def test_ar_greedy_pl_runs_the_decoder_once_per_step(tiny, counted, n_frames):
    memory, lengths = _memory(n_frames, 3, tiny.encoder.output_size())
    config = ARDecodingConfig(max_len_ratio=0.2)
    pl = ar_greedy_pseudo_labels(
        tiny.decoder, memory, lengths, tiny.sos, tiny.eos, config, modality="av", use_cache=True, incremental=False
    )
    steps = n_frames // 5
    assert pl.lengths.tolist() == [steps] * 3 and not (pl.tokens == tiny.eos).any()
    assert (counted.forward, counted.one_step, counted.layer0) == (0, steps, steps)


def test_incremental_ar_greedy_matches_espnet_cache_without_per_step_decoder_calls(tiny, counted):
    memory, lengths = _memory(40, 3, tiny.encoder.output_size(), seed=4)
    lengths = torch.tensor([40, 31, 12])
    config = ARDecodingConfig(max_len_ratio=0.2)
    fast = ar_greedy_pseudo_labels(tiny.decoder, memory, lengths, tiny.sos, tiny.eos, config, modality="v")
    assert (counted.forward, counted.one_step) == (0, 0)  # memory K/V projected once, layers stepped directly
    reference = ar_greedy_pseudo_labels(
        tiny.decoder, memory, lengths, tiny.sos, tiny.eos, config, modality="v", incremental=False
    )
    assert torch.equal(fast.tokens, reference.tokens) and torch.equal(fast.lengths, reference.lengths)
    torch.testing.assert_close(fast.confidence, reference.confidence, atol=1e-5, rtol=1e-5)


def test_ctc_pseudo_labels_do_not_touch_the_decoder(tiny, counted):
    log_probs = torch.randn(2, 50, len(tiny.token_list)).log_softmax(-1)
    ctc_pseudo_labels(log_probs, torch.tensor([50, 30]))
    assert (counted.forward, counted.one_step, counted.layer0) == (0, 0, 0)
