"""The rows of a batch that mixes labelled and unlabelled clips, read from the device once.

A semi-supervised step's batch holds the sampler's labelled clips first, then its unlabelled
ones (``SemiStep.keys``), with a ``labelled`` flag per row. Splitting it needs host-side
numbers: how many rows are labelled and each part's longest clip, so that each part is cut to
its own length. Read one by one (``bool(mask.all())``, ``x[mask]``, ``int(lengths.max())``),
every such number is a wait for the GPU; here they are gathered into one small tensor and read
with a single transfer (issue 23: no host synchronisation in the step). Rows that are not
labelled-first (a batch built some other way) are still split correctly, by boolean masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch

STREAMS = ("speech", "video")


@dataclass(frozen=True)
class MixedBatch:
    """Host-side layout of a batch: ``n_labelled`` of ``n`` rows, labelled first or not, and
    the longest ``<stream>`` / ``text`` length of each part (0 for an empty part)."""

    n: int
    n_labelled: int
    labelled_first: bool
    longest_labelled: Dict[str, int]
    longest_unlabelled: Dict[str, int]

    @property
    def all_labelled(self) -> bool:
        return self.n_labelled == self.n

    @property
    def any_labelled(self) -> bool:
        return self.n_labelled > 0


def labelled_mask(labelled: Optional[torch.Tensor], text_lengths: torch.Tensor) -> torch.Tensor:
    """(B,) bool: the ``labelled`` flags ((B,) or (B, 1)), or all true without them."""
    if labelled is None:
        return torch.ones_like(text_lengths, dtype=torch.bool)
    return labelled.reshape(-1).bool()


def read_layout(
    batch: Dict[str, Optional[torch.Tensor]], is_labelled: torch.Tensor, text_lengths: torch.Tensor
) -> MixedBatch:
    """The batch's :class:`MixedBatch`, with one device-to-host transfer."""
    lengths = {"text": text_lengths}
    lengths.update({s: batch[f"{s}_lengths"] for s in STREAMS if batch.get(s) is not None})
    names = list(lengths)
    flags = is_labelled.long()
    numbers = [
        flags.sum(),
        (flags[1:] <= flags[:-1]).all().long() if flags.numel() > 1 else flags.new_ones(()),
        *[torch.where(is_labelled, lengths[k], 0).max() for k in names],
        *[torch.where(is_labelled, 0, lengths[k]).max() for k in names],
    ]
    values = torch.stack([x.to(flags.device, torch.long) for x in numbers]).tolist()
    k = len(names)
    return MixedBatch(
        n=int(is_labelled.numel()),
        n_labelled=values[0],
        labelled_first=bool(values[1]),
        longest_labelled=dict(zip(names, values[2 : 2 + k])),
        longest_unlabelled=dict(zip(names, values[2 + k :])),
    )


def rows(x: torch.Tensor, layout: MixedBatch, is_labelled: torch.Tensor, labelled: bool) -> torch.Tensor:
    """The labelled (or unlabelled) rows of ``x``: a slice when labelled rows come first."""
    if layout.labelled_first:
        return x[: layout.n_labelled] if labelled else x[layout.n_labelled :]
    return x[is_labelled] if labelled else x[~is_labelled]


def select(
    batch: Dict[str, Optional[torch.Tensor]], layout: MixedBatch, is_labelled: torch.Tensor, labelled: bool
) -> Dict[str, Optional[torch.Tensor]]:
    """One part's rows of every input, trimmed to that part's longest clip."""
    longest = layout.longest_labelled if labelled else layout.longest_unlabelled
    out: Dict[str, Optional[torch.Tensor]] = {}
    for name in STREAMS:
        x = batch.get(name)
        if x is None:
            out[name], out[f"{name}_lengths"] = None, None
            continue
        out[name] = rows(x, layout, is_labelled, labelled)[:, : longest[name]]
        out[f"{name}_lengths"] = rows(batch[f"{name}_lengths"], layout, is_labelled, labelled)
    return out
