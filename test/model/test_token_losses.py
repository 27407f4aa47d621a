"""The device-side token loss and accuracy equal ESPnet's LabelSmoothingLoss and th_accuracy."""

import pytest
import torch
from espnet.nets.pytorch_backend.nets_utils import th_accuracy
from espnet.nets.pytorch_backend.transformer.label_smoothing_loss import LabelSmoothingLoss

from espnet_usr2.model.token_losses import LabelSmoothingCrossEntropy, token_accuracy

V = 11


def _logits_and_targets(seed=0, ignore_id=-1):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(3, 7, V, generator=g) * 3
    targets = torch.randint(0, V, (3, 7), generator=g)
    targets[0, 5:] = ignore_id
    targets[2, 1:] = ignore_id
    return logits, targets


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
@pytest.mark.parametrize("normalize_length", [False, True])
def test_loss_and_gradient_equal_espnet_label_smoothing(smoothing, normalize_length):
    logits, targets = _logits_and_targets()
    ours_in, theirs_in = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours = LabelSmoothingCrossEntropy(V, -1, smoothing, normalize_length)(ours_in, targets)
    theirs = LabelSmoothingLoss(V, -1, smoothing, normalize_length)(theirs_in, targets)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    ours.backward()
    theirs.backward()
    torch.testing.assert_close(ours_in.grad, theirs_in.grad, rtol=1e-5, atol=1e-7)


def test_padding_id_other_than_minus_one_and_wrong_vocabulary():
    logits, targets = _logits_and_targets(seed=1, ignore_id=0)
    torch.testing.assert_close(
        LabelSmoothingCrossEntropy(V, 0, 0.1)(logits, targets),
        LabelSmoothingLoss(V, 0, 0.1)(logits, targets),
        rtol=1e-6,
        atol=1e-6,
    )
    with pytest.raises(ValueError, match="11 classes, the loss was built for 12"):
        LabelSmoothingCrossEntropy(V + 1, -1, 0.1)(logits, targets)


def test_accuracy_equals_th_accuracy_as_a_tensor():
    logits, targets = _logits_and_targets(seed=2)
    logits[0, 0, targets[0, 0]] = 100.0  # at least one right
    accuracy = token_accuracy(logits, targets, -1)
    assert isinstance(accuracy, torch.Tensor) and accuracy.dim() == 0
    assert accuracy.item() == pytest.approx(th_accuracy(logits.reshape(-1, V), targets, -1), abs=1e-7)


def test_decoder_targets_equal_espnets_add_sos_eos():
    from espnet.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos

    from espnet_usr2.model.token_losses import decoder_targets

    g = torch.Generator().manual_seed(0)
    for lengths in ([5, 3, 1, 4], [2, 2], [7], [6, 0, 2]):
        lengths = torch.tensor(lengths)
        text = torch.randint(1, 30, (len(lengths), int(lengths.max())), generator=g)
        text[torch.arange(text.size(1))[None] >= lengths[:, None]] = -1
        expected = add_sos_eos(text, 31, 31, -1)
        got = decoder_targets(text, lengths, 31, 31, -1)
        for e, o in zip(expected, got):
            assert torch.equal(e, o), (lengths, e, o)
