"""Statistics of a method comparison: mean and spread over seeds, and the paired bootstrap.

Statistics over seeds are the mean and the *sample* standard deviation (``ddof=1``; "-" for
one seed).  The paired bootstrap (Koehn 2004, applied to WER) resamples the utterances of one
set with replacement and gives the spread of the WER difference of two hypothesis sets on the
*same* resampled utterances: the noise of the test set itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional

import numpy as np

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.analysis.compare_runs import ComparisonInputError


@dataclass
class Stat:
    """Mean and sample standard deviation of one value over seeds (NaN values are left out)."""

    values: Dict[str, float]  # seed -> value

    @property
    def finite(self) -> List[float]:
        return [v for v in self.values.values() if v is not None and not math.isnan(v)]

    @property
    def n(self) -> int:
        return len(self.finite)

    @property
    def mean(self) -> float:
        return float(np.mean(self.finite)) if self.finite else math.nan

    @property
    def std(self) -> float:
        return float(np.std(self.finite, ddof=1)) if self.n > 1 else math.nan

    def text(self, digits: int = 1) -> str:
        """``12.3 ± 0.4``; ``12.3`` for one seed; ``-`` for none."""
        if not self.n:
            return "-"
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"

    def as_dict(self) -> Dict[str, object]:
        return {
            "mean": json_float(self.mean),
            "std": json_float(self.std),
            "n": self.n,
            "values": {s: json_float(v) for s, v in self.values.items()},
        }


def json_float(x: Optional[float]) -> Optional[float]:
    """A value for JSON: None for a missing or NaN value (JSON has no NaN), else rounded to 6 places."""
    return None if x is None or math.isnan(x) else round(float(x), 6)


def fmt_num(x: Optional[float], digits: int = 1) -> str:
    """A single value for a Markdown table cell; ``-`` for a missing or NaN value."""
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}f}"


@dataclass
class Bootstrap:
    """WER difference a - b on one set and its spread over resampled utterance sets."""

    diff: float
    std: float
    n_utts: int
    n_words: int
    n_draws: int


def paired_bootstrap(
    ref: Mapping[str, str],
    hyp_a: Mapping[str, str],
    hyp_b: Mapping[str, str],
    n_draws: int = 1000,
    seed: int = 0,
    missing_hyp: str = "error",
) -> Bootstrap:
    """Paired bootstrap over utterances: ``n_draws`` resamples (with replacement, fixed
    ``seed``) of the utterance set, each giving WER(a) - WER(b) on the same utterances; the
    standard deviation of these differences is the test set's noise on the comparison."""
    counts_a, _ = rb.utterance_counts(ref, hyp_a, missing_hyp)
    counts_b, _ = rb.utterance_counts(ref, hyp_b, missing_hyp)
    ids = list(counts_a)
    err_a = np.array([counts_a[u].errors for u in ids], dtype=np.int64)
    err_b = np.array([counts_b[u].errors for u in ids], dtype=np.int64)
    words = np.array([counts_a[u].n_ref for u in ids], dtype=np.int64)
    if words.sum() == 0:
        raise ComparisonInputError("paired bootstrap: the reference has no words")
    rng = np.random.default_rng(seed)
    diffs = []
    for start in range(0, n_draws, 100):  # chunks keep memory at 100 x #utterances
        idx = rng.integers(0, len(ids), size=(min(100, n_draws - start), len(ids)))
        n = words[idx].sum(axis=1)
        diffs.append(100.0 * (err_a[idx].sum(axis=1) - err_b[idx].sum(axis=1)) / np.maximum(n, 1))
    diff = 100.0 * (err_a.sum() - err_b.sum()) / words.sum()
    return Bootstrap(float(diff), float(np.concatenate(diffs).std(ddof=1)), len(ids), int(words.sum()), n_draws)
