"""Per-epoch batches for semi-supervised training: one labelled + one unlabelled batch per step.

Every step pairs a labelled batch (at most ``labelled_batch_frames`` video frames) with an
unlabelled batch (at most ``unlabelled_batch_frames``). An epoch is one pass over the
unlabelled pool; the labelled pool is repeated, each repetition packed and shuffled afresh.
Batches are redrawn every epoch from ``(seed, epoch)``, identically on every rank, and only
then sharded, so ranks hold disjoint batches and the same number of steps.

Choices (see the module's functions for the details):

* **Budget** = padded frames, ``len(batch) * max_length <= budget``: the size the GPU really
  sees, which also bounds the plain sum of lengths.
* **Packing** = greedy over a *jittered* length sort: lengths are multiplied by a random
  factor in ``exp(±length_jitter)`` (default ±2 %) for ordering only, ties are broken at random,
  then consecutive utterances are packed while the padded size fits. Neighbours in the order
  have near-equal lengths (little padding), and the noise changes batch composition every
  epoch (a plain sort would give the same batches forever). On a 20k-utterance log-normal
  pool (4400-frame batches) padding is 0.2 % of an unlabelled batch at jitter 0, 1.7 % at
  0.02, 4.4 % at 0.05, 8.6 % at 0.1; random ties alone redraw 97 % of its batches each epoch,
  jitter 0.02 all of them.
* **Pairing** = the step's two batches are collated into one padded tensor, so a short
  labelled batch next to a long unlabelled one (or the reverse) would pad one side to the
  other's length. With ``pair_by_length`` both lists are sorted by their longest utterance
  and paired rank by rank before the steps are shuffled, which keeps the combined padding near
  the separate one.
* **DDP remainder** = never wrap (a wrapped batch would give one utterance to two ranks).
  Instead the unlabelled batch count is raised to a multiple of the world size by splitting
  the largest batches in two (halves stay within budget), so every unlabelled utterance is
  still seen exactly once per epoch across ranks. Only when there are too few utterances to
  split do the last ``count % world`` batches get dropped, with a warning.
* **Too-long utterances** (longer than the whole budget) are skipped and named in a warning
  at start-up; an empty pool (before or after skipping) is an error.
"""

from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
from espnet2.fileio.read_text import load_num_sequence_text

# how many skipped ids a warning names before it summarises the rest
_MAX_IDS_IN_LOG = 100

# stream ids that keep the random draws of the two pools and of the step order independent
_UNLABELLED_STREAM, _LABELLED_STREAM, _ORDER_STREAM = 0, 1, 2


class SemiSupervisedSamplerError(ValueError):
    """Raised at start-up for unusable pools (empty, all too long, bad budgets)."""


@dataclass(frozen=True)
class SemiStep:
    """One training step: a labelled and an unlabelled batch of utterance ids."""

    labelled: Tuple[str, ...]
    unlabelled: Tuple[str, ...]

    @property
    def keys(self) -> List[str]:
        """The ids in the order the collated batch holds them: labelled first."""
        return [*self.labelled, *self.unlabelled]


def read_frame_lengths(shape_file: Union[str, Path]) -> Dict[str, int]:
    """Read ``uttid T,H,W`` (or ``uttid T``) lines; returns {uttid: T}."""
    shapes = load_num_sequence_text(shape_file, loader_type="csv_int")
    return {uid: int(shape[0]) for uid, shape in shapes.items()}


def pack_greedy(ids: Sequence[str], lengths: Mapping[str, int], budget: int) -> List[List[str]]:
    """Cut ``ids`` (already in packing order) into consecutive batches within ``budget``.

    A batch is closed when the next utterance would push ``size * max_length`` over the
    budget. Every id must fit alone (callers skip longer ones first).
    """
    batches: List[List[str]] = []
    current: List[str] = []
    longest = 0
    for uid in ids:
        length = lengths[uid]
        if length > budget:
            raise SemiSupervisedSamplerError(f"utterance {uid!r} ({length} frames) exceeds the budget {budget}")
        new_longest = max(longest, length)
        if current and (len(current) + 1) * new_longest > budget:
            batches.append(current)
            current, new_longest = [], length
        current.append(uid)
        longest = new_longest
    if current:
        batches.append(current)
    return batches


def packing_order(
    ids: Sequence[str], lengths: Mapping[str, int], rng: Optional[np.random.Generator], length_jitter: float
) -> List[str]:
    """Ids sorted by length; with ``rng``, by length times a random factor in exp(±jitter).

    The multiplicative noise keeps near-equal lengths together (so padding stays small) while
    close lengths land in different batches each epoch; ties are broken at random.
    """
    values = np.array([lengths[u] for u in ids], dtype=np.float64)
    if rng is None:
        order = np.argsort(values, kind="stable")
    else:
        values = values * np.exp(rng.uniform(-length_jitter, length_jitter, size=len(ids)))
        # a random permutation before the stable sort breaks ties (equal frame counts) at
        # random, so even without jitter a dense corpus gets new neighbours every epoch
        perm = rng.permutation(len(ids))
        order = perm[np.argsort(values[perm], kind="stable")]
    return [ids[i] for i in order]


def split_to_multiple(batches: List[List[str]], multiple: int) -> Tuple[List[List[str]], int]:
    """Split the largest batches in two until the count is a multiple of ``multiple``.

    Halves of a batch that fits its budget fit it too. When too few utterances exist to reach
    the next multiple, the surplus batches at the end are dropped instead. Returns the new
    batches (splits replace their batch in place, the second half appended at the end) and the
    number of dropped batches.
    """
    shortfall = (-len(batches)) % multiple
    n_utts = sum(len(b) for b in batches)
    if shortfall == 0:
        return batches, 0
    if n_utts < len(batches) + shortfall:
        keep = len(batches) - len(batches) % multiple
        return batches[:keep], len(batches) - keep
    result = [list(b) for b in batches]
    # max-heap on size; the index breaks ties so the choice is deterministic
    heap = [(-len(b), i) for i, b in enumerate(result)]
    heapq.heapify(heap)
    for _ in range(shortfall):
        _, i = heapq.heappop(heap)
        half = len(result[i]) // 2
        result.append(result[i][half:])
        result[i] = result[i][:half]
        heapq.heappush(heap, (-len(result[i]), i))
        heapq.heappush(heap, (-len(result[-1]), len(result) - 1))
    return result, 0


class SemiSupervisedBatchSampler:
    """Plans each epoch's steps (labelled batch + unlabelled batch) and shards them by rank.

    Args:
        labelled_lengths: {uttid: video frames} of the labelled pool.
        unlabelled_lengths: {uttid: video frames} of the unlabelled pool.
        labelled_batch_frames: padded-frame budget of a labelled batch (per device).
        unlabelled_batch_frames: padded-frame budget of an unlabelled batch (per device).
        seed: base seed; epoch ``e`` draws from ``(seed, e)`` on every rank alike.
        length_jitter: width of the log-uniform noise on lengths used for ordering (0: none).
        pair_by_length: pair labelled and unlabelled batches of similar longest utterance.
    """

    def __init__(
        self,
        labelled_lengths: Mapping[str, int],
        unlabelled_lengths: Mapping[str, int],
        labelled_batch_frames: int,
        unlabelled_batch_frames: int,
        seed: int = 0,
        length_jitter: float = 0.02,
        pair_by_length: bool = True,
    ):
        if labelled_batch_frames <= 0 or unlabelled_batch_frames <= 0:
            raise SemiSupervisedSamplerError(
                f"frame budgets must be positive, got labelled={labelled_batch_frames} "
                f"unlabelled={unlabelled_batch_frames}"
            )
        if length_jitter < 0:
            raise SemiSupervisedSamplerError(f"length_jitter must be >= 0, got {length_jitter}")
        if seed < 0:
            raise SemiSupervisedSamplerError(f"seed must be >= 0, got {seed}")
        overlap = set(labelled_lengths) & set(unlabelled_lengths)
        if overlap:
            raise SemiSupervisedSamplerError(
                f"{len(overlap)} utterance ids are in both the labelled and the unlabelled pool, "
                f"e.g. {sorted(overlap)[:5]}"
            )
        self.labelled_batch_frames = labelled_batch_frames
        self.unlabelled_batch_frames = unlabelled_batch_frames
        self.seed = seed
        self.length_jitter = length_jitter
        self.pair_by_length = pair_by_length
        self.lengths: Dict[str, int] = {**labelled_lengths, **unlabelled_lengths}
        self.labelled_ids, skipped_l = _usable_ids("labelled", labelled_lengths, labelled_batch_frames)
        self.unlabelled_ids, skipped_u = _usable_ids("unlabelled", unlabelled_lengths, unlabelled_batch_frames)
        self.skipped: Dict[str, List[str]] = {"labelled": skipped_l, "unlabelled": skipped_u}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(labelled={len(self.labelled_ids)} utts / {self.labelled_batch_frames} "
            f"frames, unlabelled={len(self.unlabelled_ids)} utts / {self.unlabelled_batch_frames} frames, "
            f"seed={self.seed}, length_jitter={self.length_jitter}, pair_by_length={self.pair_by_length})"
        )

    def _rng(self, epoch: int, stream: int, index: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, epoch, stream, index])

    def _pack(self, ids: List[str], budget: int, rng: Optional[np.random.Generator]) -> List[List[str]]:
        return pack_greedy(packing_order(ids, self.lengths, rng, self.length_jitter), self.lengths, budget)

    def unlabelled_batches(self, epoch: int, shuffle: bool = True, world_size: int = 1) -> List[List[str]]:
        """All unlabelled batches of an epoch, their count a multiple of ``world_size``."""
        rng = self._rng(epoch, _UNLABELLED_STREAM) if shuffle else None
        batches = self._pack(self.unlabelled_ids, self.unlabelled_batch_frames, rng)
        batches, dropped = split_to_multiple(batches, world_size)
        if dropped:
            logging.warning(
                f"epoch {epoch}: {dropped} unlabelled batches dropped to give each of {world_size} "
                f"ranks the same number of steps (too few utterances to split batches instead)"
            )
        if not batches:
            raise SemiSupervisedSamplerError(
                f"{len(self.unlabelled_ids)} unlabelled utterances cannot give each of {world_size} ranks a batch"
            )
        return batches

    def labelled_batches(self, epoch: int, count: int, shuffle: bool = True) -> List[List[str]]:
        """``count`` labelled batches: whole passes over the labelled pool, then part of one more.

        Each pass is packed and shuffled with its own draw, so the pool is reshuffled every
        time it is exhausted.
        """
        batches: List[List[str]] = []
        n_pass = 0
        while len(batches) < count:
            rng = self._rng(epoch, _LABELLED_STREAM, n_pass) if shuffle else None
            pass_batches = self._pack(self.labelled_ids, self.labelled_batch_frames, rng)
            if rng is not None:
                rng.shuffle(pass_batches)
            batches.extend(pass_batches[: count - len(batches)])
            n_pass += 1
        return batches

    def epoch_steps(self, epoch: int, shuffle: bool = True, world_size: int = 1) -> List[SemiStep]:
        """Every step of an epoch for all ranks together (rank ``r`` takes ``steps[r::world]``)."""
        unlabelled = self.unlabelled_batches(epoch, shuffle, world_size)
        labelled = self.labelled_batches(epoch, len(unlabelled), shuffle)
        if self.pair_by_length:
            unlabelled = sorted(unlabelled, key=self._longest)
            labelled = sorted(labelled, key=self._longest)
        steps = [SemiStep(self._descending(lab), self._descending(unl)) for lab, unl in zip(labelled, unlabelled)]
        if shuffle:
            self._rng(epoch, _ORDER_STREAM).shuffle(steps)
        return steps

    def rank_steps(self, epoch: int, rank: int = 0, world_size: int = 1, shuffle: bool = True) -> List[SemiStep]:
        """This rank's steps: disjoint from other ranks', the same count on every rank."""
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of size {world_size}")
        return self.epoch_steps(epoch, shuffle, world_size)[rank::world_size]

    def _longest(self, batch: Sequence[str]) -> int:
        return max(self.lengths[u] for u in batch)

    def _descending(self, batch: Sequence[str]) -> Tuple[str, ...]:
        # ESPnet's convention (sort_in_batch=descending): longest first
        return tuple(sorted(batch, key=lambda u: -self.lengths[u]))


def _usable_ids(pool: str, lengths: Mapping[str, int], budget: int) -> Tuple[List[str], List[str]]:
    """Split a pool into ids that fit the budget (sorted) and skipped ids; log and check."""
    if not lengths:
        raise SemiSupervisedSamplerError(f"the {pool} pool is empty (no utterance in its shape file)")
    usable = sorted(u for u, n in lengths.items() if n <= budget)
    skipped = sorted(u for u, n in lengths.items() if n > budget)
    if skipped:
        named = ", ".join(f"{u} ({lengths[u]} frames)" for u in skipped[:_MAX_IDS_IN_LOG])
        more = f" and {len(skipped) - _MAX_IDS_IN_LOG} more" if len(skipped) > _MAX_IDS_IN_LOG else ""
        logging.warning(
            f"skipping {len(skipped)} {pool} utterances longer than the {budget}-frame batch budget: {named}{more}"
        )
    if not usable:
        raise SemiSupervisedSamplerError(
            f"every one of the {len(lengths)} {pool} utterances is longer than the {budget}-frame batch budget"
        )
    return usable, skipped
