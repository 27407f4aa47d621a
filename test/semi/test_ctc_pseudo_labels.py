"""CTC pseudo-labels: greedy path, collapse B(.), sequence confidence (eqs. 3, 12-13) and
USR v1 frame-level PLs (eqs. 1, 11)."""

import math

import pytest
import torch

from espnet_usr2.semi.confidence import ConfidenceConfig, ctc_sequence_confidence
from espnet_usr2.semi.ctc_pseudo_labels import (
    ctc_collapse,
    ctc_pseudo_labels,
    frame_pseudo_labels,
    greedy_ctc_frames,
)

V = 6


def peaked_log_probs(paths, probs=None, vocab=V, fill=-1):
    """(B, T, V) log-posteriors whose argmax follows ``paths`` (-1 entries = padding) with
    max probability ``probs[b][t]`` (default 0.9), the rest spread evenly."""
    t_max = max(len(p) for p in paths)
    out = torch.full((len(paths), t_max, vocab), 1.0 / vocab)
    for b, path in enumerate(paths):
        for t, label in enumerate(path):
            p = 0.9 if probs is None else probs[b][t]
            out[b, t] = (1 - p) / (vocab - 1)
            out[b, t, label] = p
    return out.log()


def test_collapse_merges_repeats_then_drops_blanks():
    ids = torch.tensor(
        [
            [0, 3, 3, 0, 3, 4, 4, 0],  # a a _ a b b _ -> 3 3 4
            [2, 2, 2, 2, 2, 2, 2, 2],  # one long run  -> 2
            [0, 0, 0, 0, 0, 0, 0, 0],  # all blank     -> empty
            [5, 1, 5, 1, 9, 9, 9, 9],
        ]
    )  # padding beyond length 4 ignored
    lengths = torch.tensor([8, 8, 8, 4])
    tokens, lens = ctc_collapse(ids, lengths, blank_id=0, ignore_id=-1)
    assert lens.tolist() == [3, 1, 0, 4]
    assert tokens.tolist() == [[3, 3, 4, -1], [2, -1, -1, -1], [-1, -1, -1, -1], [5, 1, 5, 1]]


def test_collapse_padding_does_not_merge_or_leak():
    # the row is cut at 3 frames: the 3s after the cut must not appear or merge
    tokens, lens = ctc_collapse(torch.tensor([[3, 0, 3, 3, 3]]), torch.tensor([3]))
    assert tokens.tolist() == [[3, 3]] and lens.tolist() == [2]


def test_collapse_of_an_all_blank_batch_is_empty():
    tokens, lens = ctc_collapse(torch.zeros(2, 5, dtype=torch.long), torch.tensor([5, 2]))
    assert tokens.shape == (2, 0) and lens.tolist() == [0, 0]


def test_greedy_frames_mask_padding():
    lp = peaked_log_probs([[1, 2, 2], [3]])
    ids, max_logp = greedy_ctc_frames(lp, torch.tensor([3, 1]))
    assert ids.tolist() == [[1, 2, 2], [3, -1, -1]]
    assert max_logp[1, 1:].eq(0).all()
    assert max_logp[0, 0].item() == pytest.approx(math.log(0.9), rel=1e-5)


def test_sequence_confidence_average_over_all_frames_or_emitting_frames():
    probs = [[0.5, 0.9, 0.9, 0.6, 0.99]]
    lp = peaked_log_probs([[0, 2, 2, 0, 3]], probs)
    ids, max_logp = greedy_ctc_frames(lp, torch.tensor([5]))
    conf_all = ctc_sequence_confidence(max_logp, ids, torch.tensor([5]), average="all")
    conf_emit = ctc_sequence_confidence(max_logp, ids, torch.tensor([5]), average="emitting")
    geo = lambda ps: math.exp(sum(math.log(p) for p in ps) / len(ps))  # noqa: E731
    assert conf_all.item() == pytest.approx(geo(probs[0]), rel=1e-5)
    assert conf_emit.item() == pytest.approx(geo([0.9, 0.9, 0.99]), rel=1e-5)  # frames of 2, 2, 3


def test_sequence_confidence_ignores_padding():
    lp = peaked_log_probs([[2, 2, 0], [2, 0, 0]], [[0.9, 0.9, 0.9], [0.9, 0.1, 0.1]])
    ids, max_logp = greedy_ctc_frames(lp, torch.tensor([3, 1]))
    conf = ctc_sequence_confidence(max_logp, ids, torch.tensor([3, 1]))
    torch.testing.assert_close(conf, torch.tensor([0.9, 0.9]))


@pytest.mark.parametrize("average", ["all", "emitting"])
def test_all_blank_sequence_policy(average):
    lp = peaked_log_probs([[0, 0, 0, 0]], [[0.95, 0.85, 0.95, 0.85]])
    cfg_frames = ConfidenceConfig(threshold=0.8, ctc_average=average, all_blank="frames")
    pl = ctc_pseudo_labels(lp, torch.tensor([4]), cfg_frames)
    expected = math.sqrt(0.95 * 0.85)
    assert pl.lengths.tolist() == [0]
    assert pl.confidence.item() == pytest.approx(expected, rel=1e-5)
    assert pl.mask.tolist() == [True]  # a confident "silence" passes and teaches empty output
    pl_masked = ctc_pseudo_labels(lp, torch.tensor([4]), ConfidenceConfig(0.8, average, "mask"))
    assert pl_masked.confidence.item() == 0.0 and pl_masked.mask.tolist() == [False]


def test_ctc_pseudo_labels_sequence_mask_at_threshold():
    # confidences 0.9 and 0.5 against tau = 0.8: the first passes, the second does not
    lp = peaked_log_probs([[1, 0, 2], [1, 0, 2]], [[0.9, 0.9, 0.9], [0.5, 0.5, 0.5]])
    pl = ctc_pseudo_labels(lp, torch.tensor([3, 3]), ConfidenceConfig(threshold=0.8))
    assert pl.tokens.tolist() == [[1, 2], [1, 2]]
    assert pl.mask.tolist() == [True, False]
    assert not pl.confidence.requires_grad


def test_frame_pseudo_labels_are_not_collapsed_and_masked_per_frame():
    lp = peaked_log_probs([[0, 2, 2, 0], [3, 3, 0, 0]], [[0.9, 0.7, 0.85, 0.95], [0.8, 0.5, 0.9, 0.9]])
    pl = frame_pseudo_labels(lp, torch.tensor([4, 2]), threshold=0.8)
    assert pl.labels.tolist() == [[0, 2, 2, 0], [3, 3, -1, -1]]
    assert pl.mask.tolist() == [[True, False, True, True], [True, False, False, False]]


def test_mostly_blank_pseudo_label_passes_the_all_frames_average_but_not_the_emitting_one():
    # 7 confident blanks and one unsure token: all frames 0.99^(7/8) 0.5^(1/8) ~ 0.91 >= 0.8,
    # emitting frames 0.5 < 0.8 -- the all-frames reading switches the filter off here
    blank_heavy = [[0, 0, 0, 2, 0, 0, 0, 0]], [[0.99, 0.99, 0.99, 0.5, 0.99, 0.99, 0.99, 0.99]]
    lp = peaked_log_probs(*blank_heavy)
    for configured in ("all", "emitting"):
        pl = ctc_pseudo_labels(lp, torch.tensor([8]), ConfidenceConfig(threshold=0.8, ctc_average=configured))
        assert pl.mask_by_average["all"].tolist() == [True]
        assert pl.mask_by_average["emitting"].tolist() == [False]
        assert pl.mask.tolist() == pl.mask_by_average[configured].tolist()
