"""One dataset over a labelled and an unlabelled ESPnet dataset, for mixed batches.

Both pools are ordinary :class:`espnet2.train.dataset.ESPnetDataset` objects (separate data
dirs, the same preprocessor). An utterance id is served by the pool that holds it. Every item
gets ``labelled`` = ``[1]`` or ``[0]`` (int); unlabelled items also get ``text`` = an empty
int array, added after preprocessing so the tokeniser never sees it. A batch that mixes both
kinds then has identical keys and collates with ESPnet's ``CommonCollateFn`` given
``not_sequence=["labelled"]`` (``labelled`` becomes a (B, 1) tensor, ``text_lengths`` is 0
for unlabelled rows).
"""

from __future__ import annotations

from typing import Dict, Iterable, Set, Tuple

import numpy as np
from espnet2.train.dataset import AbsDataset

LABELLED_FLAG = "labelled"


class SemiSupervisedDatasetError(ValueError):
    """Raised when the two pools cannot be served as one (names or ids clash)."""


class SemiSupervisedDataset(AbsDataset):
    """Serves ids of either pool; adds the ``labelled`` flag and empty text for unlabelled ids.

    Args:
        labelled: dataset with ``text`` (and the inputs); iterating it yields its ids.
        unlabelled: dataset with the same inputs and no ``text``.
        text_name: the label's data name.
        flag_name: the name of the added flag.
    """

    def __init__(
        self, labelled: AbsDataset, unlabelled: AbsDataset, text_name: str = "text", flag_name: str = LABELLED_FLAG
    ):
        self.labelled = labelled
        self.unlabelled = unlabelled
        self.text_name = text_name
        self.flag_name = flag_name
        _check_names(labelled.names(), unlabelled.names(), text_name, flag_name)
        self.labelled_keys: Set[str] = set(labelled)
        self.unlabelled_keys: Set[str] = set(unlabelled)
        both = self.labelled_keys & self.unlabelled_keys
        if both:
            raise SemiSupervisedDatasetError(
                f"{len(both)} utterance ids are in both the labelled and the unlabelled data, "
                f"e.g. {sorted(both)[:5]}: an id must name one utterance"
            )
        # same integer type as ESPnet gives the labelled text, so the batch pads as one
        self.int_dtype = np.dtype(getattr(labelled, "int_dtype", "long"))

    def has_name(self, name: str) -> bool:
        return name in self.names()

    def names(self) -> Tuple[str, ...]:
        return (*self.labelled.names(), self.flag_name)

    def __len__(self) -> int:
        return len(self.labelled_keys) + len(self.unlabelled_keys)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(\n  labelled ({len(self.labelled_keys)} utts): {self.labelled}\n"
            f"  unlabelled ({len(self.unlabelled_keys)} utts): {self.unlabelled})"
        )

    def check_covers(self, labelled_ids: Iterable[str], unlabelled_ids: Iterable[str]) -> None:
        """Fail at start-up if a batch could ask for an id its pool does not hold."""
        for pool, ids, keys in (
            ("labelled", labelled_ids, self.labelled_keys),
            ("unlabelled", unlabelled_ids, self.unlabelled_keys),
        ):
            missing = sorted(set(ids) - keys)
            if missing:
                raise SemiSupervisedDatasetError(
                    f"{len(missing)} {pool} ids of the shape file are not in the {pool} data, e.g. {missing[:5]}"
                )

    def __getitem__(self, uid: str) -> Tuple[str, Dict[str, np.ndarray]]:
        if uid in self.labelled_keys:
            key, data = self.labelled[uid]
            data = dict(data)  # never touch a dict the inner dataset may cache
            data[self.flag_name] = np.array([1], dtype=self.int_dtype)
        elif uid in self.unlabelled_keys:
            key, data = self.unlabelled[uid]
            data = dict(data)
            data[self.text_name] = np.zeros(0, dtype=self.int_dtype)
            data[self.flag_name] = np.array([0], dtype=self.int_dtype)
        else:
            raise KeyError(f"utterance {uid!r} is in neither the labelled nor the unlabelled data")
        return key, data


def _check_names(labelled: Tuple[str, ...], unlabelled: Tuple[str, ...], text_name: str, flag_name: str) -> None:
    """Both pools must give the same keys once empty text is added, or batches cannot collate."""
    if text_name not in labelled:
        raise SemiSupervisedDatasetError(f"the labelled data has no {text_name!r}: names {labelled}")
    if text_name in unlabelled:
        raise SemiSupervisedDatasetError(
            f"the unlabelled data must not have {text_name!r} (it gets an empty one): names {unlabelled}"
        )
    for names in (labelled, unlabelled):
        if flag_name in names:
            raise SemiSupervisedDatasetError(f"{flag_name!r} is reserved for the labelled flag: names {names}")
    if set(labelled) - {text_name} != set(unlabelled):
        raise SemiSupervisedDatasetError(
            f"labelled inputs {sorted(set(labelled) - {text_name})} differ from unlabelled inputs "
            f"{sorted(unlabelled)}: batches mixing both would not collate"
        )
