"""The labelled + unlabelled union dataset through a real DataLoader on generated data dirs."""

import argparse
from pathlib import Path

import numpy as np
import pytest
import torch
from espnet2.train.collate_fn import CommonCollateFn
from espnet2.train.dataset import ESPnetDataset
from espnet2.train.distributed_utils import DistributedOption

from espnet_usr2.data.preprocessor import USR2Preprocessor
from espnet_usr2.data.semi_dataset import SemiSupervisedDataset, SemiSupervisedDatasetError
from espnet_usr2.samplers.semi_iter_factory import (
    SemiSupervisedIterFactory,
    build_semi_supervised_iter_factory,
)
from espnet_usr2.samplers.semi_supervised import SemiSupervisedBatchSampler, read_frame_lengths
from espnet_usr2.tasks.usr2 import USR2Task

FRAMES_PER_SYMBOL = 5
INPUTS = (("wav.scp", "speech", "sound"), ("video.scp", "video", "roi_video"))


def _entries(root: Path, with_text: bool):
    files = INPUTS + ((("text", "text", "text"),) if with_text else ())
    return [(str(root / f), name, kind) for f, name, kind in files]


@pytest.fixture(scope="module")
def corpus(write_toy_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("semi")
    texts = {}
    for pool, n, seed in (("lab", 5, 0), ("unl", 8, 1)):
        texts[pool] = write_toy_corpus(
            root / pool, num_utts=n, seed=seed, prefix=pool, frames_per_symbol=FRAMES_PER_SYMBOL
        )
        (root / pool / "video_shape").write_text(
            "".join(f"{u} {len(t) * FRAMES_PER_SYMBOL},96,96\n" for u, t in sorted(texts[pool].items()))
        )
    return root, texts


def _preprocess(token_list):
    return USR2Preprocessor(train=True, token_type="char", token_list=token_list)


def _union(root: Path, token_list) -> SemiSupervisedDataset:
    return SemiSupervisedDataset(
        ESPnetDataset(_entries(root / "lab", True), preprocess=_preprocess(token_list)),
        ESPnetDataset(_entries(root / "unl", False), preprocess=_preprocess(token_list)),
    )


def _check_batches(loader, texts, tokens):
    seen_unlabelled = []
    for keys, batch in loader:
        flags = batch["labelled"]
        assert flags.shape == (len(keys), 1) and flags.dtype == torch.long and "labelled_lengths" not in batch
        assert batch["video"].shape[:2] == (len(keys), batch["video_lengths"].max())
        assert torch.equal(batch["speech_lengths"], 640 * batch["video_lengths"])
        for i, uid in enumerate(keys):
            n = int(batch["text_lengths"][i])
            if uid in texts["lab"]:
                assert flags[i, 0] == 1
                assert "".join(tokens[t] for t in batch["text"][i, :n]) == texts["lab"][uid]
            else:
                assert uid in texts["unl"] and flags[i, 0] == 0 and n == 0
                assert (batch["text"][i] == -1).all()  # all padding
                seen_unlabelled.append(uid)
        assert 0 < int(flags.sum()) < len(keys)  # every step mixes both kinds
    return seen_unlabelled


def test_union_dataset_and_collate_give_flags_and_empty_text(corpus, token_list):
    root, texts = corpus
    dataset = _union(root, token_list)
    uid = sorted(texts["unl"])[0]
    _, item = dataset[uid]
    assert item["text"].shape == (0,) and item["text"].dtype == np.int64 and item["labelled"].tolist() == [0]
    assert dataset.names() == ("speech", "video", "text", "labelled") and dataset.has_name("labelled")
    sampler = SemiSupervisedBatchSampler(
        read_frame_lengths(root / "lab" / "video_shape"),
        read_frame_lengths(root / "unl" / "video_shape"),
        40,
        60,
        seed=0,
    )
    factory = SemiSupervisedIterFactory(
        dataset, sampler, collate_fn=CommonCollateFn(float_pad_value=0.0, int_pad_value=-1, not_sequence=["labelled"])
    )
    seen = _check_batches(factory.build_iter(1), texts, token_list)
    assert sorted(seen) == sorted(texts["unl"])  # one pass over the unlabelled pool


def test_build_factory_from_parsed_espnet_options(corpus, token_list):
    root, texts = corpus
    parser = USR2Task.get_parser()  # the task adds the semi-supervised options itself
    args = parser.parse_args(
        [
            "--token_list",
            "unused",
            "--batch_type",
            "semi_supervised",
            "--labelled_batch_frames",
            "40",
            "--unlabelled_batch_frames",
            "60",
            *[
                a
                for p, n, t in _entries(root / "lab", True)
                for a in ("--train_data_path_and_name_and_type", f"{p},{n},{t}")
            ],
            *[
                a
                for p, n, t in _entries(root / "unl", False)
                for a in ("--unlabelled_data_path_and_name_and_type", f"{p},{n},{t}")
            ],
            "--train_shape_file",
            str(root / "lab" / "video_shape"),
            "--unlabelled_shape_file",
            str(root / "unl" / "video_shape"),
        ]
    )
    checked = []
    factory = build_semi_supervised_iter_factory(
        args,
        DistributedOption(),
        _preprocess(token_list),
        CommonCollateFn(float_pad_value=0.0, int_pad_value=-1, not_sequence=["labelled"]),
        check_requirements=lambda ds: checked.append(
            USR2Task.check_task_requirements(ds, args.allow_variable_data_keys, train=True)
        ),
    )
    assert checked == [None]
    seen = _check_batches(factory.build_iter(2), texts, token_list)
    assert sorted(seen) == sorted(texts["unl"])
    first = [keys for keys, _ in factory.build_iter(3)]
    assert first == [keys for keys, _ in factory.build_iter(3)]  # same epoch, same batches


def test_ids_in_both_pools_or_in_none_are_clear_errors(corpus):
    root, _ = corpus
    labelled = ESPnetDataset(_entries(root / "lab", True))
    twin = ESPnetDataset(_entries(root / "lab", False))
    with pytest.raises(SemiSupervisedDatasetError, match="5 utterance ids are in both"):
        SemiSupervisedDataset(labelled, twin)
    dataset = SemiSupervisedDataset(labelled, ESPnetDataset(_entries(root / "unl", False)))
    with pytest.raises(KeyError, match="'nobody' is in neither"):
        dataset["nobody"]
    with pytest.raises(SemiSupervisedDatasetError, match="unlabelled ids of the shape file are not in"):
        dataset.check_covers([], ["nobody"])


def test_mismatched_data_names_are_clear_errors(corpus):
    root, _ = corpus
    labelled = ESPnetDataset(_entries(root / "lab", True))
    with pytest.raises(SemiSupervisedDatasetError, match="must not have 'text'"):
        SemiSupervisedDataset(labelled, ESPnetDataset(_entries(root / "unl", True)))
    video_only = ESPnetDataset([(str(root / "unl" / "video.scp"), "video", "roi_video")])
    with pytest.raises(SemiSupervisedDatasetError, match="would not collate"):
        SemiSupervisedDataset(labelled, video_only)
    with pytest.raises(SemiSupervisedDatasetError, match="labelled data has no 'text'"):
        SemiSupervisedDataset(ESPnetDataset(_entries(root / "lab", False)), video_only)


def test_missing_unlabelled_options_are_clear_errors():
    args = argparse.Namespace(
        unlabelled_data_path_and_name_and_type=[], train_shape_file=["x"], unlabelled_shape_file=["y"]
    )
    with pytest.raises(ValueError, match="needs --unlabelled_data_path_and_name_and_type"):
        build_semi_supervised_iter_factory(args, DistributedOption(), None, None)
