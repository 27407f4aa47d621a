"""PaddedTargetsCTC computes ESPnet's CTC loss from the padded targets: same value and gradients,
same parameter names (checkpoints and released weights load unchanged)."""

from __future__ import annotations

import torch
from espnet2.asr.ctc import CTC

from espnet_usr2.model.padded_ctc import PaddedTargetsCTC


def _inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hs = torch.randn(4, 30, 16, generator=g)
    hlens = torch.tensor([30, 24, 17, 9])
    ys_lens = torch.tensor([9, 5, 7, 0])  # an empty transcript too
    ys = torch.randint(1, 20, (4, 9), generator=g)
    ys[torch.arange(9)[None] >= ys_lens[:, None]] = -1
    return hs, hlens, ys, ys_lens


def test_loss_and_gradients_equal_espnets():
    hs, hlens, ys, ys_lens = _inputs()
    reference = CTC(20, 16)
    ours = PaddedTargetsCTC(20, 16)
    ours.load_state_dict(reference.state_dict())
    assert list(ours.state_dict()) == list(reference.state_dict()) == ["ctc_lo.weight", "ctc_lo.bias"]
    a_in, b_in = hs.clone().requires_grad_(), hs.clone().requires_grad_()
    a, b = reference(a_in, hlens, ys, ys_lens), ours(b_in, hlens, ys, ys_lens)
    a.backward()
    b.backward()
    assert torch.equal(a, b)
    assert torch.equal(a_in.grad, b_in.grad)
    assert torch.equal(reference.ctc_lo.weight.grad, ours.ctc_lo.weight.grad)


def test_targets_trimmed_or_wider_give_the_same_loss():
    """Padding past the longest transcript (a batch cut from a wider one) changes nothing."""
    hs, hlens, ys, ys_lens = _inputs(1)
    ctc = PaddedTargetsCTC(20, 16)
    wider = torch.cat([ys, torch.full((4, 5), -1)], dim=1)
    assert torch.equal(ctc(hs, hlens, ys, ys_lens), ctc(hs, hlens, wider, ys_lens))
