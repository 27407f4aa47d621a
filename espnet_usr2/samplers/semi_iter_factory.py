"""ESPnet iterator factory for semi-supervised training (``--batch_type semi_supervised``).

``USR2Task.build_iter_factory`` calls :func:`build_semi_supervised_iter_factory` for the
training split; the factory's ``build_iter(epoch)`` returns a ``DataLoader`` over the union of
the labelled and unlabelled datasets whose batches are this rank's steps of that epoch (see
:mod:`espnet_usr2.samplers.semi_supervised`). Validation keeps ESPnet's own iterators.
"""

from __future__ import annotations

import argparse
import logging
from functools import partial
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from espnet2.iterators.abs_iter_factory import AbsIterFactory
from espnet2.iterators.sequence_iter_factory import worker_init_fn
from espnet2.train.dataset import AbsDataset, ESPnetDataset
from espnet2.train.distributed_utils import DistributedOption
from espnet2.utils.types import str2bool, str2triple_str
from torch.utils.data import DataLoader

from espnet_usr2.data.semi_dataset import SemiSupervisedDataset
from espnet_usr2.samplers.semi_supervised import SemiStep, SemiSupervisedBatchSampler, read_frame_lengths
from espnet_usr2.utils.distributed import rank_and_world

SEMI_SUPERVISED_BATCH_TYPE = "semi_supervised"


class SemiSupervisedIterFactory(AbsIterFactory):
    """Builds each epoch's DataLoader from the sampler's steps for one rank.

    Args:
        dataset: serves every labelled and unlabelled id (a :class:`SemiSupervisedDataset`).
        sampler: plans the steps; seeded, so every rank plans the same epoch.
        rank, world_size: this process's shard of the steps.
        num_iters_per_epoch: if set, an "epoch" is this many steps of the endless stream of
            unlabelled passes (pass ``k`` drawn with seed ``seed + k``), as ESPnet's
            ``SequenceIterFactory`` does; otherwise one epoch is one unlabelled pass.
        shuffle: default for ``build_iter``; False gives length-sorted, unshuffled batches.
    """

    def __init__(
        self,
        dataset: AbsDataset,
        sampler: SemiSupervisedBatchSampler,
        rank: int = 0,
        world_size: int = 1,
        num_iters_per_epoch: Optional[int] = None,
        shuffle: bool = True,
        num_workers: int = 0,
        collate_fn: Optional[Callable] = None,
        pin_memory: bool = False,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        if num_iters_per_epoch is not None and num_iters_per_epoch <= 0:
            raise ValueError(f"num_iters_per_epoch must be positive, got {num_iters_per_epoch}")
        self.dataset = dataset
        self.sampler = sampler
        self.rank = rank
        self.world_size = world_size
        self.num_iters_per_epoch = num_iters_per_epoch
        self.shuffle = shuffle
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        # steps per rank of each unlabelled pass, memoised for num_iters_per_epoch
        self._pass_sizes: Dict[Tuple[int, bool], int] = {}

    def _pass_steps(self, index: int, shuffle: bool) -> List[SemiStep]:
        steps = self.sampler.rank_steps(index, self.rank, self.world_size, shuffle)
        self._pass_sizes[(index, shuffle)] = len(steps)
        return steps

    def epoch_steps(self, epoch: int, shuffle: Optional[bool] = None) -> List[SemiStep]:
        """This rank's steps for ``epoch`` (1-based, as ESPnet's Trainer counts)."""
        if shuffle is None:
            shuffle = self.shuffle
        if self.num_iters_per_epoch is None:
            return self._pass_steps(epoch, shuffle)
        return self._window(epoch, shuffle)

    def _window(self, epoch: int, shuffle: bool) -> List[SemiStep]:
        """Steps ``[(epoch-1)*n, epoch*n)`` of the stream of passes 1, 2, 3, ..."""
        n = self.num_iters_per_epoch
        start = (epoch - 1) * n
        index = 1
        # skip whole passes before the window; sizes are memoised after the first time
        while True:
            size = self._pass_sizes.get((index, shuffle))
            if size is None:
                size = len(self._pass_steps(index, shuffle))
            if start < size:
                break
            start -= size
            index += 1
        steps: List[SemiStep] = []
        while len(steps) < n:
            pass_steps = self._pass_steps(index, shuffle)
            steps.extend(pass_steps[start : start + n - len(steps)])
            start, index = 0, index + 1
        return steps

    def build_iter(self, epoch: int, shuffle: Optional[bool] = None) -> DataLoader:
        steps = self.epoch_steps(epoch, shuffle)
        kwargs = {} if self.collate_fn is None else dict(collate_fn=self.collate_fn)
        return DataLoader(
            dataset=self.dataset,
            batch_sampler=[step.keys for step in steps],
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            worker_init_fn=partial(worker_init_fn, base_seed=epoch + self.sampler.seed),
            **kwargs,
        )


def add_semi_supervised_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the unlabelled data options and frame budgets; allow ``--batch_type semi_supervised``.

    Call from ``add_task_arguments`` (ESPnet adds ``--batch_type`` before it calls that hook).
    """
    _allow_batch_type(parser)
    group = parser.add_argument_group(description="Semi-supervised batches (--batch_type semi_supervised)")
    group.add_argument(
        "--unlabelled_data_path_and_name_and_type",
        type=str2triple_str,
        action="append",
        default=[],
        help="Unlabelled training data (speech and/or video, no text), e.g. dump/vox2/video.scp,video,roi_video",
    )
    group.add_argument(
        "--unlabelled_shape_file",
        type=str,
        action="append",
        default=[],
        help="Video shape file of the unlabelled data (uttid T,H,W)",
    )
    group.add_argument(
        "--labelled_batch_frames", type=int, default=600, help="Padded video frames per labelled batch per device"
    )
    group.add_argument(
        "--unlabelled_batch_frames", type=int, default=4400, help="Padded video frames per unlabelled batch per device"
    )
    group.add_argument(
        "--semi_length_jitter",
        type=float,
        default=0.02,
        help="Log-uniform noise on lengths when ordering utterances for packing; "
        "redraws batch composition each epoch (0: fixed batches)",
    )
    group.add_argument(
        "--semi_pair_by_length",
        type=str2bool,
        default=True,
        help="Pair labelled and unlabelled batches of similar length (less padding)",
    )


def _allow_batch_type(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:  # argparse has no public way to extend choices
        if (
            action.dest == "batch_type"
            and action.choices is not None
            and SEMI_SUPERVISED_BATCH_TYPE not in action.choices
        ):
            action.choices = [*action.choices, SEMI_SUPERVISED_BATCH_TYPE]


def select_video_shape_file(shape_files: Sequence[str], option: str) -> str:
    """The one shape file whose first dimension counts video frames."""
    if len(shape_files) == 1:
        return shape_files[0]
    video = [f for f in shape_files if f.rstrip("/").split("/")[-1].startswith("video_shape")]
    if len(video) != 1:
        raise ValueError(
            f"{option}: give exactly one video shape file (uttid T,H,W), or name it "
            f"video_shape*; got {list(shape_files)}"
        )
    return video[0]


def build_semi_supervised_iter_factory(
    args: argparse.Namespace,
    distributed_option: DistributedOption,
    preprocess_fn: Optional[Callable[[str, Dict[str, np.ndarray]], Dict[str, np.ndarray]]],
    collate_fn: Optional[Callable],
    check_requirements: Optional[Callable[[AbsDataset], None]] = None,
) -> SemiSupervisedIterFactory:
    """The training iterator factory for ``--batch_type semi_supervised``.

    Args:
        args: parsed options (ESPnet's plus :func:`add_semi_supervised_arguments`).
        distributed_option: rank and world size come from the initialised process group.
        preprocess_fn: the task's training preprocessor, applied to both pools.
        collate_fn: must treat ``labelled`` as not a sequence (``CommonCollateFn(not_sequence=...)``).
        check_requirements: run on the labelled dataset (e.g. the task's data-name check).
    """
    if not args.unlabelled_data_path_and_name_and_type:
        raise ValueError("--batch_type semi_supervised needs --unlabelled_data_path_and_name_and_type")
    if not args.train_shape_file or not args.unlabelled_shape_file:
        raise ValueError(
            "--batch_type semi_supervised needs --train_shape_file and --unlabelled_shape_file "
            "(video shape files, uttid T,H,W)"
        )
    rank, world_size = rank_and_world(distributed_option)
    sampler = SemiSupervisedBatchSampler(
        labelled_lengths=read_frame_lengths(select_video_shape_file(args.train_shape_file, "--train_shape_file")),
        unlabelled_lengths=read_frame_lengths(
            select_video_shape_file(args.unlabelled_shape_file, "--unlabelled_shape_file")
        ),
        labelled_batch_frames=args.labelled_batch_frames,
        unlabelled_batch_frames=args.unlabelled_batch_frames,
        seed=args.seed,
        length_jitter=args.semi_length_jitter,
        pair_by_length=args.semi_pair_by_length,
    )
    common = dict(
        float_dtype=args.train_dtype,
        preprocess=preprocess_fn,
        max_cache_size=args.max_cache_size,
        max_cache_fd=args.max_cache_fd,
        allow_multi_rates=args.allow_multi_rates,
    )
    labelled = ESPnetDataset(args.train_data_path_and_name_and_type, **common)
    if check_requirements is not None:
        check_requirements(labelled)
    unlabelled = ESPnetDataset(args.unlabelled_data_path_and_name_and_type, **common)
    dataset = SemiSupervisedDataset(labelled, unlabelled)
    dataset.check_covers(sampler.labelled_ids, sampler.unlabelled_ids)
    logging.info(f"[train] semi-supervised batches: {sampler}; rank {rank} of {world_size}")
    logging.info(f"[train] dataset:\n{dataset}")
    return SemiSupervisedIterFactory(
        dataset=dataset,
        sampler=sampler,
        rank=rank,
        world_size=world_size,
        num_iters_per_epoch=args.num_iters_per_epoch,
        shuffle=True,
        num_workers=args.num_workers,
        collate_fn=collate_fn,
        pin_memory=args.ngpu > 0,
    )
