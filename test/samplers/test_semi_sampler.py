"""The semi-supervised sampler: budgets, coverage, repetition, redraw, DDP sharding, skipping."""

import argparse
import logging
from collections import Counter

import numpy as np
import pytest

from espnet_usr2.samplers.semi_iter_factory import (
    SemiSupervisedIterFactory,
    add_semi_supervised_arguments,
    select_video_shape_file,
)
from espnet_usr2.samplers.semi_supervised import (
    SemiSupervisedBatchSampler,
    SemiSupervisedSamplerError,
    pack_greedy,
    read_frame_lengths,
    split_to_multiple,
)


def padded_frames(batch, lengths) -> int:
    """Frames of the padded tensor a batch becomes: size times the longest utterance."""
    return len(batch) * max((lengths[u] for u in batch), default=0)


L_BUDGET, U_BUDGET = 600, 4400


def _lengths(prefix: str, n: int, seed: int, low: int = 20, high: int = 500) -> dict:
    rng = np.random.default_rng(seed)
    return {f"{prefix}{i:05d}": int(x) for i, x in enumerate(rng.integers(low, high, size=n))}


@pytest.fixture(scope="module")
def pools():
    return _lengths("lab", 40, 0), _lengths("unl", 900, 1)


@pytest.fixture(scope="module")
def sampler(pools):
    return SemiSupervisedBatchSampler(*pools, L_BUDGET, U_BUDGET, seed=3)


def _unlabelled_ids(steps):
    return [u for s in steps for u in s.unlabelled]


def test_budgets_are_never_exceeded(sampler, pools):
    lengths = {**pools[0], **pools[1]}
    for epoch in (1, 2):
        steps = sampler.epoch_steps(epoch)
        assert steps and all(s.labelled and s.unlabelled for s in steps)
        assert max(padded_frames(s.labelled, lengths) for s in steps) <= L_BUDGET
        assert max(padded_frames(s.unlabelled, lengths) for s in steps) <= U_BUDGET
        # the packing is not trivially small: batches are filled close to the budget on average
        assert np.mean([padded_frames(s.unlabelled, lengths) for s in steps]) > 0.8 * U_BUDGET


def test_every_unlabelled_utterance_exactly_once_per_epoch(sampler, pools):
    for epoch in (1, 2, 3):
        ids = _unlabelled_ids(sampler.rank_steps(epoch, 0, 1))
        assert Counter(ids) == Counter(list(pools[1]))


def test_labelled_pool_repeats_when_smaller(sampler, pools):
    steps = sampler.epoch_steps(1)
    counts = Counter(u for s in steps for u in s.labelled)
    assert set(counts) == set(pools[0])  # every labelled utterance appears
    passes = min(counts.values())
    assert passes >= 2 and max(counts.values()) <= passes + 1  # whole passes plus part of one more
    # no utterance twice in one step
    assert all(len(set(s.labelled)) == len(s.labelled) for s in steps)


def test_batches_are_redrawn_each_epoch_and_reproducible(pools):
    a = SemiSupervisedBatchSampler(*pools, L_BUDGET, U_BUDGET, seed=3)
    b = SemiSupervisedBatchSampler(*pools, L_BUDGET, U_BUDGET, seed=3)
    assert a.epoch_steps(1) == b.epoch_steps(1)
    assert a.epoch_steps(2) == b.epoch_steps(2)
    sets = lambda steps: {frozenset(s.unlabelled) for s in steps}  # noqa: E731
    # different composition, not just a different order
    assert sets(a.epoch_steps(1)) != sets(a.epoch_steps(2))
    assert a.epoch_steps(1) != SemiSupervisedBatchSampler(*pools, L_BUDGET, U_BUDGET, seed=4).epoch_steps(1)


def test_redraw_also_happens_with_equal_lengths():
    # many ties (as in the toy corpus): a plain stable sort would give the same batches forever
    s = SemiSupervisedBatchSampler(
        {f"l{i}": 10 for i in range(20)},
        {f"u{i}": 10 * (1 + i % 3) for i in range(60)},
        40,
        100,
        seed=0,
        length_jitter=0.0,
    )
    assert {frozenset(x.unlabelled) for x in s.epoch_steps(1)} != {frozenset(x.unlabelled) for x in s.epoch_steps(2)}


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_get_disjoint_batches_and_equal_step_counts(sampler, pools, world):
    for epoch in (1, 2):
        per_rank = [sampler.rank_steps(epoch, r, world) for r in range(world)]
        assert len({len(steps) for steps in per_rank}) == 1
        ids = [_unlabelled_ids(steps) for steps in per_rank]
        for r in range(world):
            for q in range(r + 1, world):
                assert not set(ids[r]) & set(ids[q])
        # splitting instead of wrapping or dropping: still every utterance exactly once
        assert Counter(u for rank_ids in ids for u in rank_ids) == Counter(list(pools[1]))
        for r in range(world):  # within a step, the ranks' labelled batches differ too
            assert per_rank[r][0].labelled != per_rank[(r + 1) % world][0].labelled


def test_pairing_by_length_reduces_padding_of_the_combined_batch(pools):
    lengths = {**pools[0], **pools[1]}

    def waste(pair: bool) -> float:
        steps = SemiSupervisedBatchSampler(*pools, L_BUDGET, U_BUDGET, seed=3, pair_by_length=pair).epoch_steps(1)
        padded = sum(padded_frames(s.keys, lengths) for s in steps)
        return 1 - sum(lengths[u] for s in steps for u in s.keys) / padded

    assert waste(True) < 0.2 < waste(False)


def test_too_long_utterances_are_named_skipped_and_never_batched(caplog):
    lab = {"lab-ok": 100, "lab-long": 700}
    unl = {"unl-ok1": 50, "unl-ok2": 4000, "unl-huge": 5000}
    with caplog.at_level(logging.WARNING):
        s = SemiSupervisedBatchSampler(lab, unl, L_BUDGET, U_BUDGET)
    assert "lab-long (700 frames)" in caplog.text and "unl-huge (5000 frames)" in caplog.text
    assert "skipping 1 labelled" in caplog.text and "skipping 1 unlabelled" in caplog.text
    assert s.skipped == {"labelled": ["lab-long"], "unlabelled": ["unl-huge"]}
    ids = {u for step in s.epoch_steps(1) for u in step.keys}
    assert ids == {"lab-ok", "unl-ok1", "unl-ok2"}


def test_empty_or_unusable_pools_are_clear_errors():
    with pytest.raises(SemiSupervisedSamplerError, match="labelled pool is empty"):
        SemiSupervisedBatchSampler({}, {"u": 10}, L_BUDGET, U_BUDGET)
    with pytest.raises(SemiSupervisedSamplerError, match="unlabelled pool is empty"):
        SemiSupervisedBatchSampler({"l": 10}, {}, L_BUDGET, U_BUDGET)
    with pytest.raises(SemiSupervisedSamplerError, match="every one of the 1 unlabelled utterances is longer"):
        SemiSupervisedBatchSampler({"l": 10}, {"u": 9999}, L_BUDGET, U_BUDGET)
    with pytest.raises(SemiSupervisedSamplerError, match="in both"):
        SemiSupervisedBatchSampler({"x": 10}, {"x": 10}, L_BUDGET, U_BUDGET)
    with pytest.raises(SemiSupervisedSamplerError, match="must be positive"):
        SemiSupervisedBatchSampler({"l": 10}, {"u": 10}, 0, U_BUDGET)
    with pytest.raises(SemiSupervisedSamplerError, match="cannot give each of 3 ranks"):
        SemiSupervisedBatchSampler({"l": 10}, {"u1": 10, "u2": 10}, L_BUDGET, U_BUDGET).epoch_steps(1, world_size=3)


def test_pack_greedy_counts_padded_frames():
    lengths = {"a": 10, "b": 10, "c": 30, "d": 5}
    assert pack_greedy(["a", "b", "c", "d"], lengths, 60) == [["a", "b"], ["c", "d"]]
    assert pack_greedy(["d", "a", "b", "c"], lengths, 30) == [["d", "a", "b"], ["c"]]


def test_split_to_multiple_splits_largest_then_drops_when_it_must():
    batches, dropped = split_to_multiple([["a", "b", "c", "d"], ["e"], ["f", "g"]], 2)
    assert dropped == 0 and len(batches) == 4
    assert sorted(u for b in batches for u in b) == list("abcdefg") and ["a", "b"] in batches
    batches, dropped = split_to_multiple([["a"], ["b"], ["c"]], 2)
    assert (batches, dropped) == ([["a"], ["b"]], 1)


def test_unshuffled_epochs_are_length_sorted_and_identical(sampler, pools):
    steps = sampler.epoch_steps(1, shuffle=False)
    assert steps == sampler.epoch_steps(2, shuffle=False)
    longest = [pools[1][s.unlabelled[0]] for s in steps]
    assert longest == sorted(longest)


def test_iter_factory_num_iters_per_epoch_walks_through_passes(sampler):
    factory = SemiSupervisedIterFactory(dataset=None, sampler=sampler, num_iters_per_epoch=7)
    full = sampler.rank_steps(1) + sampler.rank_steps(2)
    stream = [s for e in range(1, 4) for s in factory.epoch_steps(e)]
    assert all(len(factory.epoch_steps(e)) == 7 for e in range(1, 4))
    assert stream == full[:21]
    far = len(full) // 7 + 1  # a window that crosses from pass 2 into pass 3
    assert factory.epoch_steps(far) == (full + sampler.rank_steps(3))[(far - 1) * 7 : far * 7]


def test_read_frame_lengths_and_shape_file_choice(tmp_path):
    shape = tmp_path / "video_shape"
    shape.write_text("u1 25,96,96\nu2 40,96,96\n")
    assert read_frame_lengths(shape) == {"u1": 25, "u2": 40}
    assert select_video_shape_file(["a/speech_shape", "a/video_shape"], "--x") == "a/video_shape"
    with pytest.raises(ValueError, match="exactly one video shape file"):
        select_video_shape_file(["a/speech_shape", "a/text_shape"], "--x")


def test_arguments_allow_the_semi_supervised_batch_type():
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch_type", default="folded", choices=["folded", "numel"])
    add_semi_supervised_arguments(parser)
    args = parser.parse_args(
        [
            "--batch_type",
            "semi_supervised",
            "--unlabelled_shape_file",
            "s",
            "--unlabelled_data_path_and_name_and_type",
            "v.scp,video,roi_video",
        ]
    )
    assert args.batch_type == "semi_supervised" and args.labelled_batch_frames == 600
    assert args.unlabelled_batch_frames == 4400
    assert args.unlabelled_data_path_and_name_and_type == [("v.scp", "video", "roi_video")]
    with pytest.raises(SystemExit):
        parser.parse_args(["--batch_type", "nonsense"])
