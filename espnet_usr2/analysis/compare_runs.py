"""The runs of a method comparison as ``run_compare.sh`` leaves them: manifest, training curves, hypotheses.

* **Manifest** ``runs.tsv``: header ``method<TAB>seed<TAB>exp_dir``, one row per run
  (``exp_dir`` absolute or relative to the manifest's directory).
* **Training curves** from each ESPnet exp dir's ``checkpoint.pth``: ``["reporter"]`` is
  :meth:`espnet2.train.reporter.Reporter.state_dict` (``{"stats": {epoch: {"train": {...},
  "valid": {...}}}, "epoch": N}``).  The wall-clock of an epoch is ``stats[e]["train"]["time"]``
  (a ``timedelta`` of the training loop only; validation is timed separately and left out).
* **Hypotheses** ``<exp_dir>/<decode_tag>/<set>/<video|audio|audiovisual>/text`` and, for the
  babble-noise sweep, ``<exp_dir>/noise/decode/snr<label>/<audio|audiovisual>/text``
  (labels of :func:`espnet_usr2.analysis.robustness.condition_name`); references
  ``<ref_dir>/<set>/text`` and ``<ref_dir>/<set>/utt2num_frames`` (or a shape file).

A WER is corpus-level (errors summed over utterances / reference words, sclite's alignment).
"""

from __future__ import annotations

import csv
import datetime
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.scoring.sclite import ScoringInputError, read_kaldi_text
from espnet_usr2.utils.modalities import LONG_NAMES

PathLike = Union[str, Path]
MANIFEST_HEADER = ("method", "seed", "exp_dir")


class ComparisonInputError(ScoringInputError):
    """A manifest, checkpoint or decode directory that the report cannot use."""


@dataclass(frozen=True)
class Run:
    """One training run of the comparison."""

    method: str
    seed: str
    exp_dir: Path

    @property
    def name(self) -> str:
        return f"{self.method}/seed{self.seed}"


def read_manifest(path: PathLike) -> List[Run]:
    """The runs of ``runs.tsv``; a clear error for a bad header, row or duplicate."""
    path = Path(path)
    if not path.is_file():
        raise ComparisonInputError(f"manifest {str(path)!r} does not exist")
    with path.open(encoding="utf-8", newline="") as f:
        rows = [r for r in csv.reader(f, delimiter="\t") if r and any(c.strip() for c in r)]
    if not rows or tuple(c.strip() for c in rows[0]) != MANIFEST_HEADER:
        raise ComparisonInputError(
            f"{path}: the first line must be 'method<TAB>seed<TAB>exp_dir', got {rows[0] if rows else 'an empty file'}"
        )
    runs, seen = [], set()
    for lineno, row in enumerate(rows[1:], 2):
        if len(row) != 3 or not all(c.strip() for c in row):
            raise ComparisonInputError(f"{path}:{lineno}: expected 3 tab-separated fields, got {row}")
        method, seed, exp = (c.strip() for c in row)
        if (method, seed) in seen:
            raise ComparisonInputError(f"{path}:{lineno}: method {method!r} seed {seed!r} is listed twice")
        seen.add((method, seed))
        exp_dir = Path(exp) if Path(exp).is_absolute() else path.parent / exp
        if not exp_dir.is_dir():
            raise ComparisonInputError(
                f"{path}:{lineno}: exp_dir {str(exp_dir)!r} of {method} seed {seed} does not exist"
            )
        runs.append(Run(method, seed, exp_dir))
    if not runs:
        raise ComparisonInputError(f"{path}: no runs listed")
    return runs


def methods_of(runs: Sequence[Run]) -> List[str]:
    """Method names in manifest order."""
    return list(dict.fromkeys(r.method for r in runs))


def runs_of_method(runs: Sequence[Run], method: str) -> List[Run]:
    """The runs (seeds) of one method, in manifest order."""
    return [r for r in runs if r.method == method]


@dataclass
class Curve:
    """Per-epoch training wall-clock and statistics of one run, in epoch order."""

    epochs: List[int]
    train_seconds: List[float]
    train: Dict[str, List[float]]
    valid: Dict[str, List[float]]
    steps: List[float] = field(default_factory=list)  # optimiser steps done by each epoch's end (NaN: unknown)

    @property
    def cum_seconds(self) -> List[float]:
        return [float(x) for x in np.cumsum(self.train_seconds)]

    def valid_values(self, key: str) -> List[float]:
        return self.valid.get(key, [math.nan] * len(self.epochs))

    def final_valid(self, key: str) -> float:
        values = self.valid_values(key)
        return values[-1] if values else math.nan


def _number(value: object) -> Optional[float]:
    """A reporter value as a float; None for what is not a number (e.g. a timedelta)."""
    if isinstance(value, (bool, datetime.timedelta)) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def read_reporter_stats(exp_dir: PathLike) -> Dict[int, Dict[str, Dict[str, object]]]:
    """``stats`` of the reporter saved in ``<exp_dir>/checkpoint.pth`` (ESPnet's Trainer)."""
    import torch

    path = Path(exp_dir) / "checkpoint.pth"
    if not path.is_file():
        raise ComparisonInputError(
            f"training checkpoint {str(path)!r} does not exist (the run has not finished an epoch?)"
        )
    # the checkpoint holds timedeltas and optimiser state: ESPnet's own resume loads it the same way
    state = torch.load(path, map_location="cpu", weights_only=False)
    try:
        stats = state["reporter"]["stats"]
    except (KeyError, TypeError):
        raise ComparisonInputError(
            f"{path}: no reporter statistics (expected ['reporter']['stats'] as espnet2's Trainer saves them)"
        ) from None
    if not stats:
        raise ComparisonInputError(f"{path}: the reporter holds no epoch")
    return stats


def training_curve(stats: Mapping[int, Mapping[str, Mapping[str, object]]], where: str = "") -> Curve:
    """Epoch times and statistics in epoch order; an epoch without ``train`` time is an error."""
    epochs = sorted(stats)
    seconds, steps, train, valid = [], [], {}, {}
    for i, e in enumerate(epochs):
        entry = stats[e]
        t = entry.get("train", {}).get("time")
        if not isinstance(t, datetime.timedelta):
            raise ComparisonInputError(f"{where}: epoch {e} has no train time in the reporter")
        seconds.append(t.total_seconds())
        # ESPnet's reporter counts the run's training iterations (from 0 at its start) in total_count
        count = _number(entry["train"].get("total_count"))
        steps.append(math.nan if count is None else count)
        for split, out in (("train", train), ("valid", valid)):
            for key, value in entry.get(split, {}).items():
                x = _number(value)
                if x is not None and key not in ("total_count",):
                    out.setdefault(key, [math.nan] * len(epochs))[i] = x
    return Curve(epochs, seconds, train, valid, steps)


def read_curve(exp_dir: PathLike) -> Curve:
    return training_curve(read_reporter_stats(exp_dir), str(Path(exp_dir) / "checkpoint.pth"))


def hyp_path(exp_dir: PathLike, tag: str, test_set: str, modality: str) -> Path:
    return Path(exp_dir) / tag / test_set / LONG_NAMES[modality] / "text"


def noise_hyp_path(exp_dir: PathLike, snr: float, modality: str) -> Path:
    return Path(exp_dir) / "noise" / "decode" / rb.condition_name(snr) / LONG_NAMES[modality] / "text"


def read_hyp(path: Path, who: str) -> Dict[str, str]:
    """A hypothesis text; a missing file is an error naming the run and the path."""
    if not path.is_file():
        raise ComparisonInputError(f"{who}: decoded text {str(path)!r} does not exist")
    return read_kaldi_text(path, f"hypothesis text of {who}")


@dataclass
class Reference:
    """One test set's reference words and frame counts."""

    name: str
    text: Dict[str, str]
    frames: Optional[Dict[str, int]]

    @property
    def n_words(self) -> int:
        return sum(len(t.split()) for t in self.text.values())


def read_reference(ref_dir: PathLike, test_set: str, frames_file: str = "utt2num_frames") -> Reference:
    d = Path(ref_dir) / test_set
    text = read_kaldi_text(d / "text", f"reference text of {test_set}")
    frames = rb.read_num_frames(d / frames_file) if (d / frames_file).is_file() else None
    return Reference(test_set, text, frames)


def corpus_wer(ref: Mapping[str, str], hyp: Mapping[str, str], missing_hyp: str = "error") -> float:
    """Corpus-level WER (%) of one hypothesis set."""
    counts, _ = rb.utterance_counts(ref, hyp, missing_hyp)
    cell = rb.WerCell()
    for c in counts.values():
        cell.add(c)
    return cell.wer
