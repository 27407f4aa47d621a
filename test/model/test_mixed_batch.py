"""Splitting a mixed labelled / unlabelled batch: the same rows, lengths and trims whether the
labelled rows come first (slices, as the sampler builds batches) or not (boolean masks)."""

from __future__ import annotations

import torch

from espnet_usr2.model.mixed_batch import labelled_mask, read_layout, select


def _batch(order):
    video_lengths = torch.tensor([5, 3, 7, 2])[order]
    speech_lengths = video_lengths * 640
    return dict(
        video=torch.arange(4 * 8 * 2 * 2, dtype=torch.float32).view(4, 8, 2, 2)[order],
        video_lengths=video_lengths,
        speech=torch.randn(4, 8 * 640, generator=torch.Generator().manual_seed(0))[order],
        speech_lengths=speech_lengths,
    )


def test_layout_reads_counts_and_each_parts_longest():
    flags = torch.tensor([1, 1, 0, 0])
    text_lengths = torch.tensor([4, 6, 0, 0])
    layout = read_layout(_batch(torch.arange(4)), labelled_mask(flags, text_lengths), text_lengths)
    assert (layout.n, layout.n_labelled, layout.labelled_first) == (4, 2, True)
    assert layout.longest_labelled == {"text": 6, "speech": 5 * 640, "video": 5}
    assert layout.longest_unlabelled == {"text": 0, "speech": 7 * 640, "video": 7}
    assert not layout.all_labelled and layout.any_labelled


def test_labelled_first_slices_equal_mask_selection_of_a_shuffled_batch():
    flags = torch.tensor([1, 1, 0, 0])
    text_lengths = torch.tensor([4, 6, 0, 0])
    first = _batch(torch.arange(4))
    order = torch.tensor([2, 0, 3, 1])  # the same rows, labelled ones not first
    shuffled = _batch(order)
    mask_first, mask_shuffled = labelled_mask(flags, text_lengths), labelled_mask(flags[order], text_lengths[order])
    layout_first = read_layout(first, mask_first, text_lengths)
    layout_shuffled = read_layout(shuffled, mask_shuffled, text_lengths[order])
    assert layout_first.labelled_first and not layout_shuffled.labelled_first
    for labelled in (True, False):
        a = select(first, layout_first, mask_first, labelled)
        b = select(shuffled, layout_shuffled, mask_shuffled, labelled)
        longest = 5 if labelled else 7
        assert a["video"].shape[1] == longest and a["speech"].shape[1] == longest * 640
        if labelled:  # the same rows in the same order
            for key in a:
                assert torch.equal(a[key], b[key]), key
        else:  # masks keep the shuffled order: compare as sets of rows
            assert sorted(a["video_lengths"].tolist()) == sorted(b["video_lengths"].tolist())


def test_all_labelled_and_no_flags():
    text_lengths = torch.tensor([3, 1])
    batch = {"video": torch.zeros(2, 4, 2, 2), "video_lengths": torch.tensor([4, 2]), "speech": None}
    layout = read_layout(batch, labelled_mask(None, text_lengths), text_lengths)
    assert layout.all_labelled and layout.longest_labelled == {"text": 3, "video": 4}
    part = select(batch, layout, labelled_mask(None, text_lengths), labelled=False)
    assert part["video"].shape[0] == 0 and part["speech"] is None
