"""Confidence masks (eqs. 11-13): ``>=`` keeps a value exactly at tau; options are validated."""

import pytest
import torch

from espnet_usr2.semi.confidence import (
    ConfidenceConfig,
    frame_confidence_mask,
    sequence_confidence_mask,
    token_confidence_mask,
    token_sequence_confidence,
)


def test_token_mask_keeps_exactly_at_threshold_and_drops_padding():
    conf = torch.tensor([[0.8, 0.79999, 0.95, 0.9]])
    mask = token_confidence_mask(conf, torch.tensor([3]), threshold=0.8)
    assert mask.tolist() == [[True, False, True, False]]  # last is padding


def test_frame_mask_keeps_exactly_at_threshold():
    conf = torch.tensor([[0.8, 0.7, 1.0], [0.81, 0.8, 0.8]])
    mask = frame_confidence_mask(conf, torch.tensor([3, 2]), threshold=0.8)
    assert mask.tolist() == [[True, False, True], [True, True, False]]


def test_sequence_mask_keeps_exactly_at_threshold():
    assert sequence_confidence_mask(torch.tensor([0.8, 0.7999, 1.0]), 0.8).tolist() == [True, False, True]


@pytest.mark.parametrize("tau, expected", [(0.0, [True, True]), (1.0, [False, True])])
def test_threshold_extremes(tau, expected):
    assert sequence_confidence_mask(torch.tensor([0.0, 1.0]), tau).tolist() == expected


def test_token_sequence_confidence_is_geometric_mean_of_valid_tokens():
    conf = torch.tensor([[0.9, 0.4, 0.123], [0.5, 0.0, 0.0]])
    out = token_sequence_confidence(conf, torch.tensor([2, 0]))
    torch.testing.assert_close(out, torch.tensor([0.6, 0.0]))


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(threshold=1.2), "threshold"),
        (dict(threshold=-0.1), "threshold"),
        (dict(ctc_average="tokens"), "ctc_average"),
        (dict(all_blank="drop"), "all_blank"),
    ],
)
def test_config_validation_names_the_option(kwargs, name):
    with pytest.raises(ValueError, match=name):
        ConfidenceConfig(**kwargs)
