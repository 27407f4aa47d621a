"""Methods x seeds compared from one supervised warm-up: WER tables, failures, time to accuracy.

The paper's claims are comparative (USR 2.0 vs supervised-only and USR v1, and its
ablations; Sec. 5, Fig. 3-5, Tables 1 and 10-12).  This module reads what
``egs2/mini_lrs3/usr2/run_compare.sh`` leaves behind and writes the report:

* **Manifest** ``runs.tsv``: header ``method<TAB>seed<TAB>exp_dir``, one row per run
  (``exp_dir`` absolute or relative to the manifest's directory).
* **Training curves** from each ESPnet exp dir's ``checkpoint.pth``: ``["reporter"]`` is
  :meth:`espnet2.train.reporter.Reporter.state_dict` (``{"stats": {epoch: {"train": {...},
  "valid": {...}}}, "epoch": N}``).  The wall-clock of an epoch is ``stats[e]["train"]["time"]``
  (a ``timedelta`` of the training loop only; validation is timed separately and left out).
  Time 0 is the end of the warm-up; its last epoch's validation values start every curve.
  The cost of a training step is ESPnet's ``train_time`` statistic (the reporter's mean per
  epoch of each optimiser step's wall-clock), its median over epochs.
* **Hypotheses** ``<exp_dir>/<decode_tag>/<set>/<video|audio|audiovisual>/text`` and, for the
  babble-noise sweep, ``<exp_dir>/noise/decode/snr<label>/<audio|audiovisual>/text``
  (labels of :func:`espnet_usr2.analysis.robustness.condition_name`); references
  ``<ref_dir>/<set>/text`` and ``<ref_dir>/<set>/utt2num_frames`` (or a shape file).

Statistics over seeds are the mean and the *sample* standard deviation (``ddof=1``; "-" for
one seed).  A WER is corpus-level (errors summed over utterances / reference words, sclite's
alignment).  Time to accuracy interpolates linearly between epochs (the first crossing of
the target between two validation points); a run that never reaches the target is reported
as such, not dropped.  The paired bootstrap (Koehn 2004, applied to WER) resamples the
utterances of one set with replacement and gives the spread of the WER difference of two
hypothesis sets on the *same* resampled utterances: the noise of the test set itself.
"""

from __future__ import annotations

import csv
import datetime
import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.analysis.failures import count_failures
from espnet_usr2.scoring.sclite import ScoringInputError, read_kaldi_text
from espnet_usr2.utils.modalities import AUDIO, AUDIOVISUAL, LONG_NAMES, VIDEO

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
MANIFEST_HEADER = ("method", "seed", "exp_dir")
TABLE_MODALITIES = (VIDEO, AUDIO, AUDIOVISUAL)
SHORT_LABEL = {VIDEO: "V", AUDIO: "A", AUDIOVISUAL: "AV"}
NOISE_MODALITIES = (AUDIO, AUDIOVISUAL)  # video-only decoding does not hear the noise
FAILURE_MODALITIES = (AUDIOVISUAL, VIDEO, AUDIO)
LENGTH_MODALITIES = (AUDIOVISUAL, VIDEO)
DETECT_POINTS = 5.0  # the WER difference the long set must resolve (issue 12: beyond its noise)
CURVE_METRICS = ("cer_ctc_av", "acc_av")  # CTC greedy CER (a real decoding) and decoder accuracy
# fractions of pseudo-labels kept that the semi-supervised objectives log: pl_ctc_keep (and its
# pl_ctc_keep_all / pl_ctc_keep_emitting readings), pl_att_keep, pl_frame_keep (USR v1)
PL_KEEP_PATTERN = re.compile(r"^pl_(\w+_)?keep(_\w+)?$")
# ESPnet's Trainer registers the wall-clock of every optimiser step (data loading, forward,
# backward, update) as ``train_time``; the reporter keeps its mean per epoch
STEP_TIME_KEY = "train_time"
WARMUP_ROW = "warm-up"


class ComparisonInputError(ScoringInputError):
    """A manifest, checkpoint or decode directory that the report cannot use."""


# =========================================================================== statistics


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
            "mean": _json_float(self.mean),
            "std": _json_float(self.std),
            "n": self.n,
            "values": {s: _json_float(v) for s, v in self.values.items()},
        }


def _json_float(x: Optional[float]) -> Optional[float]:
    return None if x is None or math.isnan(x) else round(float(x), 6)


# =========================================================================== manifest


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


# =========================================================================== training curves


@dataclass
class Curve:
    """Per-epoch training wall-clock and statistics of one run, in epoch order."""

    epochs: List[int]
    train_seconds: List[float]
    train: Dict[str, List[float]]
    valid: Dict[str, List[float]]

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
    seconds, train, valid = [], {}, {}
    for i, e in enumerate(epochs):
        entry = stats[e]
        t = entry.get("train", {}).get("time")
        if not isinstance(t, datetime.timedelta):
            raise ComparisonInputError(f"{where}: epoch {e} has no train time in the reporter")
        seconds.append(t.total_seconds())
        for split, out in (("train", train), ("valid", valid)):
            for key, value in entry.get(split, {}).items():
                x = _number(value)
                if x is not None and key not in ("total_count",):
                    out.setdefault(key, [math.nan] * len(epochs))[i] = x
    return Curve(epochs, seconds, train, valid)


def read_curve(exp_dir: PathLike) -> Curve:
    return training_curve(read_reporter_stats(exp_dir), str(Path(exp_dir) / "checkpoint.pth"))


# =========================================================================== time to accuracy


def time_to_reach(
    times: Sequence[float], values: Sequence[float], target: float, start: Optional[Tuple[float, float]] = None
) -> Optional[float]:
    """Wall-clock at which ``values`` (at ``times``) first reach ``target``, or None.

    Between two validation points the metric is taken as linear in time, so the crossing is
    ``t0 + (target - v0) / (v1 - v0) * (t1 - t0)``.  ``start`` = (0, warm-up value) begins the
    curve.  NaN points are skipped.
    """
    points = ([start] if start is not None else []) + list(zip(times, values))
    points = [(float(t), float(v)) for t, v in points if not math.isnan(v)]
    if not points:
        return None
    if points[0][1] >= target:
        return points[0][0]
    for (t0, v0), (t1, v1) in zip(points[:-1], points[1:]):
        if v1 >= target:  # v0 < target <= v1, so v1 > v0
            return t0 + (target - v0) / (v1 - v0) * (t1 - t0)
    return None


@dataclass
class TimeToAccuracy:
    """Seconds of training until ``metric`` reaches ``target``, per method and seed, and the
    ratio ``methods[0] / methods[1]`` per seed."""

    metric: str
    target: float
    target_is_default: bool
    methods: Tuple[str, str]
    seconds: Dict[str, Dict[str, Optional[float]]]  # method -> seed -> seconds (None: never)
    total_seconds: Dict[str, Dict[str, float]]  # method -> seed -> whole training time
    best: Dict[str, Dict[str, float]]  # method -> seed -> best value reached

    def ratios(self) -> Dict[str, float]:
        """Per seed both methods ran and reached the target."""
        num, den = (self.seconds.get(m, {}) for m in self.methods)
        return {s: num[s] / den[s] for s in num if s in den and num[s] is not None and den[s]}

    def as_dict(self) -> Dict[str, object]:
        return {
            "metric": self.metric,
            "target": self.target,
            "target_is_default": self.target_is_default,
            "methods": list(self.methods),
            "seconds": self.seconds,
            "total_seconds": self.total_seconds,
            "best": self.best,
            "ratio": Stat(self.ratios()).as_dict(),
            "interpolation": "linear in time between validation points",
        }


def default_target(curves: Mapping[Run, Curve], metric: str) -> float:
    """The highest value that every given run reaches: the minimum over runs of each run's best."""
    bests = [_best(c.valid_values(metric)) for c in curves.values()]
    if not bests or any(math.isnan(b) for b in bests):
        raise ComparisonInputError(f"some compared runs never report valid {metric!r}")
    return float(min(bests))


def _best(values: Sequence[float]) -> float:
    """The largest non-NaN value; NaN when there is none."""
    finite = [v for v in values if not math.isnan(v)]
    return max(finite) if finite else math.nan


def time_to_accuracy(
    curves: Mapping[Run, Curve],
    methods: Tuple[str, str],
    metric: str = "acc_av",
    target: Optional[float] = None,
    start_value: Optional[float] = None,
) -> TimeToAccuracy:
    """Time to accuracy of the runs of ``methods`` (e.g. ("usr2", "usr1")); ``target`` defaults
    to :func:`default_target` over those runs.  ``start_value`` is the warm-up's, at time 0."""
    chosen = {r: c for r, c in curves.items() if r.method in methods}
    for m in methods:
        if not any(r.method == m for r in chosen):
            raise ComparisonInputError(f"time to accuracy: no run of method {m!r} in the manifest")
    is_default = target is None
    if target is None:
        target = default_target(chosen, metric)
    start = None if start_value is None or math.isnan(start_value) else (0.0, start_value)
    seconds: Dict[str, Dict[str, Optional[float]]] = {m: {} for m in methods}
    total: Dict[str, Dict[str, float]] = {m: {} for m in methods}
    best: Dict[str, Dict[str, float]] = {m: {} for m in methods}
    for run, c in chosen.items():
        values = c.valid_values(metric)
        seconds[run.method][run.seed] = time_to_reach(c.cum_seconds, values, target, start)
        total[run.method][run.seed] = float(sum(c.train_seconds))
        best[run.method][run.seed] = _best(values)
    return TimeToAccuracy(metric, float(target), is_default, tuple(methods), seconds, total, best)


def _minutes(seconds: Optional[float]) -> str:
    return "not reached" if seconds is None else f"{seconds / 60:.2f}"


def tta_markdown(tta: TimeToAccuracy) -> str:
    """Side-by-side table: per seed, minutes to the target for both methods and their ratio."""
    a, b = tta.methods
    seeds = list(dict.fromkeys([*tta.seconds[a], *tta.seconds[b]]))
    ratios = tta.ratios()
    how = "the highest value every compared run reaches" if tta.target_is_default else "given"
    lines = [
        f"Target: valid `{tta.metric}` >= {tta.target:.4f} ({how}); training wall-clock in minutes "
        f"(train loop only, validation excluded), linear interpolation between epochs; time 0 = end "
        f"of the warm-up.",
        "",
        f"| seed | {a} (min) | {b} (min) | {a} / {b} | {a} best | {b} best | {a} total | {b} total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in seeds:
        ratio = f"{ratios[s]:.2f}" if s in ratios else "-"
        lines.append(
            f"| {s} | {_minutes(tta.seconds[a].get(s))} | {_minutes(tta.seconds[b].get(s))} | {ratio} | "
            f"{_fmt_num(tta.best[a].get(s), 4)} | {_fmt_num(tta.best[b].get(s), 4)} | "
            f"{_minutes(tta.total_seconds[a].get(s))} | {_minutes(tta.total_seconds[b].get(s))} |"
        )
    lines += [
        "",
        f"Ratio {a} / {b}: **{Stat(ratios).text(2)}** over {len(ratios)} seed(s) where both reached the target.",
    ]
    return "\n".join(lines)


def _fmt_num(x: Optional[float], digits: int = 1) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:.{digits}f}"


# =========================================================================== decoded hypotheses


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


# =========================================================================== paired bootstrap


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


# =========================================================================== the report's numbers


@dataclass
class ReportConfig:
    """Where things are and what to compare (the bin entry's options)."""

    manifest: Path
    ref_dir: Path
    out_dir: Path
    warmup_dir: Optional[Path] = None
    decode_tags: Sequence[str] = ("greedy", "beam")
    sets: Sequence[str] = ("test", "test_long")
    long_set: str = "test_long"
    noise_set: str = "test"
    snrs: Sequence[float] = rb.PAPER_SNRS_DB
    frames_file: str = "utt2num_frames"
    tta_methods: Tuple[str, str] = ("usr2", "usr1")
    tta_metric: str = "acc_av"
    target: Optional[float] = None
    bootstrap_pairs: Sequence[Tuple[str, str]] = (("usr2", "usr1"), ("usr2", "sup"))
    bootstrap_tag: str = "greedy"
    bootstrap_modality: str = AUDIOVISUAL
    n_draws: int = 1000
    bootstrap_seed: int = 0
    buckets: Sequence[rb.Bucket] = field(default_factory=rb.make_buckets)
    missing_hyp: str = "error"
    step_cost_dirs: Sequence[Tuple[str, Path]] = ()  # more runs for the step cost (e.g. pre-training)


@dataclass
class Comparison:
    """Every number of the report."""

    config: ReportConfig
    runs: List[Run]
    methods: List[str]
    refs: Dict[str, Reference]
    curves: Dict[Run, Curve]
    warmup_curve: Optional[Curve]
    wer: Dict[Tuple[str, str, str, str], Stat]  # (set, tag, method, modality)
    warmup_wer: Dict[Tuple[str, str, str], float]  # (set, tag, modality)
    noise: Dict[Tuple[str, str, float], Stat]  # (method, modality, snr)
    failures: Dict[Tuple[str, str, str, str], Stat]  # (tag, method, modality, kind)
    length: Dict[Tuple[str, str, str, str], Stat]  # (tag, modality, method, bucket label)
    length_outside: int
    tta: Optional[TimeToAccuracy]
    pl_keep: Dict[Tuple[str, str], Stat]  # (method, stats key)
    step_time: Dict[str, Stat]  # method (or warm-up / --step_cost_dirs name) -> seconds per step
    bootstrap: Dict[Tuple[str, str], Dict[str, Bootstrap]]  # (a, b) -> seed -> result
    notes: List[str]


def _by_method(runs: Sequence[Run], method: str) -> List[Run]:
    return [r for r in runs if r.method == method]


def collect_wer(
    cfg: ReportConfig, runs: Sequence[Run], refs: Mapping[str, Reference]
) -> Dict[Tuple[str, str, str, str], Stat]:
    """Clean WER per set x tag x method x modality (mean over seeds)."""
    out = {}
    for s in cfg.sets:
        for tag in cfg.decode_tags:
            for m in methods_of(runs):
                for mod in TABLE_MODALITIES:
                    out[(s, tag, m, mod)] = Stat(
                        {
                            r.seed: corpus_wer(
                                refs[s].text, read_hyp(hyp_path(r.exp_dir, tag, s, mod), r.name), cfg.missing_hyp
                            )
                            for r in _by_method(runs, m)
                        }
                    )
    return out


def collect_warmup_wer(cfg: ReportConfig, refs: Mapping[str, Reference]) -> Dict[Tuple[str, str, str], float]:
    """The warm-up's WER where it was decoded (``<warmup>/<tag>/<set>/<modality>/text``)."""
    out = {}
    if cfg.warmup_dir is None:
        return out
    for s in cfg.sets:
        for tag in cfg.decode_tags:
            for mod in TABLE_MODALITIES:
                path = hyp_path(cfg.warmup_dir, tag, s, mod)
                if path.is_file():
                    out[(s, tag, mod)] = corpus_wer(refs[s].text, read_hyp(path, "warm-up"), cfg.missing_hyp)
    return out


def collect_noise(
    cfg: ReportConfig, runs: Sequence[Run], ref: Reference, notes: List[str]
) -> Dict[Tuple[str, str, float], Stat]:
    """WER per method x modality x SNR; runs without ``noise/decode`` are noted and skipped."""
    values: Dict[Tuple[str, str, float], Dict[str, float]] = {}
    missing = [r.name for r in runs if not (r.exp_dir / "noise" / "decode").is_dir()]
    if missing:
        notes.append(
            f"no babble-noise decoding (<exp_dir>/noise/decode) for {len(missing)} run(s), "
            f"left out of the noise table: {', '.join(missing)}"
        )
    for r in runs:
        if r.name in missing:
            continue
        for mod in NOISE_MODALITIES:
            for snr in cfg.snrs:
                hyp = read_hyp(noise_hyp_path(r.exp_dir, snr, mod), f"{r.name} at {rb.snr_label(snr)} dB")
                values.setdefault((r.method, mod, snr), {})[r.seed] = corpus_wer(ref.text, hyp, cfg.missing_hyp)
    return {k: Stat(v) for k, v in values.items()}


def collect_failures(cfg: ReportConfig, runs: Sequence[Run], ref: Reference) -> Dict[Tuple[str, str, str, str], Stat]:
    """Hypotheses with a repetition loop / an omission on the long set, per run (mean over seeds)."""
    out = {}
    for tag in cfg.decode_tags:
        for m in methods_of(runs):
            for mod in FAILURE_MODALITIES:
                rep, omi = {}, {}
                for r in _by_method(runs, m):
                    fc = count_failures(
                        ref.text, read_hyp(hyp_path(r.exp_dir, tag, ref.name, mod), r.name), cfg.missing_hyp
                    )
                    rep[r.seed], omi[r.seed] = float(fc.repetition), float(fc.omission)
                out[(tag, m, mod, "repetition")] = Stat(rep)
                out[(tag, m, mod, "omission")] = Stat(omi)
    return out


def _combined(cfg: ReportConfig, refs: Mapping[str, Reference]) -> Tuple[Dict[str, str], Dict[str, int]]:
    """All sets' references and frame counts under ``<set>/<uttid>`` (ids may repeat across sets)."""
    text, frames = {}, {}
    for s in cfg.sets:
        if refs[s].frames is None:
            raise ComparisonInputError(
                f"WER by length needs frame counts: {str(cfg.ref_dir / s / cfg.frames_file)!r} "
                f"does not exist (give --frames_file, e.g. a shape file)"
            )
        text.update({f"{s}/{u}": t for u, t in refs[s].text.items()})
        frames.update({f"{s}/{u}": n for u, n in refs[s].frames.items()})
    return text, frames


def collect_length(
    cfg: ReportConfig, runs: Sequence[Run], refs: Mapping[str, Reference]
) -> Tuple[Dict[Tuple[str, str, str, str], Stat], int]:
    """WER per length bucket on all sets combined, per tag x modality x method (mean over seeds);
    also how many utterances fall outside every bucket (not scored)."""
    ref, frames = _combined(cfg, refs)
    values: Dict[Tuple[str, str, str, str], Dict[str, float]] = {}
    outside = 0
    for tag in cfg.decode_tags:
        for mod in LENGTH_MODALITIES:
            for r in runs:
                hyp = {
                    f"{s}/{u}": t
                    for s in cfg.sets
                    for u, t in read_hyp(hyp_path(r.exp_dir, tag, s, mod), r.name).items()
                }
                table = rb.wer_by_length(ref, {r.name: hyp}, frames, cfg.buckets, cfg.missing_hyp)
                outside = table.n_outside[r.name]
                for b in table.buckets:
                    values.setdefault((tag, mod, r.method, b.label), {})[r.seed] = table.wer(r.name, b)
    return {k: Stat(v) for k, v in values.items()}, outside


def collect_pl_keep(runs: Sequence[Run], curves: Mapping[Run, Curve]) -> Dict[Tuple[str, str], Stat]:
    """Mean over epochs of each train statistic of pseudo-labels kept (``pl_*keep*``, see
    :data:`PL_KEEP_PATTERN`), per method (mean over seeds)."""
    values: Dict[Tuple[str, str], Dict[str, float]] = {}
    for r in runs:
        for key, series in curves[r].train.items():
            if PL_KEEP_PATTERN.match(key):
                finite = [x for x in series if not math.isnan(x)]
                values.setdefault((r.method, key), {})[r.seed] = float(np.mean(finite)) if finite else math.nan
    return {k: Stat(v) for k, v in values.items()}


def median_step_seconds(curve: Curve) -> float:
    """Median over epochs of the reporter's mean ``train_time`` per epoch (seconds per
    optimiser step); the median leaves out a first epoch slowed by start-up. NaN if not logged."""
    finite = [x for x in curve.train.get(STEP_TIME_KEY, []) if not math.isnan(x)]
    return float(np.median(finite)) if finite else math.nan


def collect_step_time(
    cfg: ReportConfig, runs: Sequence[Run], curves: Mapping[Run, Curve], warmup_curve: Optional[Curve]
) -> Dict[str, Stat]:
    """Seconds per training step per method (mean over seeds), then the warm-up and each
    ``step_cost_dirs`` run (one value each): the cost of a step of each arm from the same run."""
    values: Dict[str, Dict[str, float]] = {}
    for r in runs:
        values.setdefault(r.method, {})[r.seed] = median_step_seconds(curves[r])
    if warmup_curve is not None:
        values[WARMUP_ROW] = {"-": median_step_seconds(warmup_curve)}
    for name, exp_dir in cfg.step_cost_dirs:
        values[name] = {"-": median_step_seconds(read_curve(exp_dir))}
    return {k: Stat(v) for k, v in values.items()}


def collect_bootstrap(
    cfg: ReportConfig, runs: Sequence[Run], ref: Reference, notes: List[str]
) -> Dict[Tuple[str, str], Dict[str, Bootstrap]]:
    """The paired bootstrap of each requested method pair, per seed both methods ran."""
    out = {}
    for a, b in cfg.bootstrap_pairs:
        seeds_a = {r.seed: r for r in _by_method(runs, a)}
        seeds_b = {r.seed: r for r in _by_method(runs, b)}
        common = [s for s in seeds_a if s in seeds_b]
        if not common:
            notes.append(f"paired bootstrap {a} vs {b}: no seed with both methods, skipped")
            continue
        out[(a, b)] = {}
        for s in common:
            hyps = [
                read_hyp(hyp_path(x.exp_dir, cfg.bootstrap_tag, ref.name, cfg.bootstrap_modality), x.name)
                for x in (seeds_a[s], seeds_b[s])
            ]
            out[(a, b)][s] = paired_bootstrap(
                ref.text, *hyps, n_draws=cfg.n_draws, seed=cfg.bootstrap_seed, missing_hyp=cfg.missing_hyp
            )
    return out


def compare(cfg: ReportConfig) -> Comparison:
    """Read everything and compute every number of the report."""
    runs = read_manifest(cfg.manifest)
    notes: List[str] = []
    needed = list(dict.fromkeys([*cfg.sets, cfg.long_set, cfg.noise_set]))
    refs = {s: read_reference(cfg.ref_dir, s, cfg.frames_file) for s in needed}
    curves = {r: read_curve(r.exp_dir) for r in runs}
    warmup_curve = read_curve(cfg.warmup_dir) if cfg.warmup_dir is not None else None
    if warmup_curve is None:
        notes.append("no --warmup_dir: training curves start at the first epoch, not at the warm-up")
    tta = None
    if all(any(r.method == m for r in runs) for m in cfg.tta_methods):
        start = warmup_curve.final_valid(cfg.tta_metric) if warmup_curve is not None else None
        tta = time_to_accuracy(curves, cfg.tta_methods, cfg.tta_metric, cfg.target, start)
    else:
        notes.append(f"time to accuracy: needs runs of both {cfg.tta_methods[0]!r} and {cfg.tta_methods[1]!r}")
    length, outside = collect_length(cfg, runs, refs)
    if outside:
        notes.append(
            f"WER by length: {outside} utterances are outside the buckets "
            f"{cfg.buckets[0].lo}-{cfg.buckets[-1].hi} frames and not scored there"
        )
    return Comparison(
        config=cfg,
        runs=runs,
        methods=methods_of(runs),
        refs=refs,
        curves=curves,
        warmup_curve=warmup_curve,
        wer=collect_wer(cfg, runs, refs),
        warmup_wer=collect_warmup_wer(cfg, refs),
        noise=collect_noise(cfg, runs, refs[cfg.noise_set], notes) if cfg.snrs else {},
        failures=collect_failures(cfg, runs, refs[cfg.long_set]),
        length=length,
        length_outside=outside,
        tta=tta,
        pl_keep=collect_pl_keep(runs, curves),
        step_time=collect_step_time(cfg, runs, curves, warmup_curve),
        bootstrap=collect_bootstrap(cfg, runs, refs[cfg.long_set], notes) if cfg.bootstrap_pairs else {},
        notes=notes,
    )


# =========================================================================== plots

Series = Dict[str, Tuple[Sequence[float], Sequence[float], Sequence[float]]]  # label -> (x, mean, std)


@dataclass
class Panel:
    """One axes of a figure: lines with a shaded ±std band."""

    title: str
    series: Series
    ylabel: str
    xticks: Optional[Tuple[Sequence[float], Sequence[str]]] = None
    from_zero: bool = False  # y axis starts at 0 (WER)


def plot_panels(panels: Sequence[Panel], path: PathLike, xlabel: str, title: str, ncols: int = 2) -> Path:
    """Panels on a grid (matplotlib Agg), one line per method, the band = ±1 std over seeds."""
    plt = rb._pyplot()
    ncols = min(ncols, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols + 2.0, 4.0 * nrows + 0.4), dpi=120, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        for label, (x, mean, std) in panel.series.items():
            x, mean, std = (np.asarray(v, dtype=float) for v in (x, mean, std))
            (line,) = ax.plot(x, mean, marker="o", markersize=3, linewidth=1.6, label=label)
            band = np.nan_to_num(std)
            ax.fill_between(x, mean - band, mean + band, color=line.get_color(), alpha=0.15, linewidth=0)
        if panel.xticks is not None:
            ax.set_xticks(panel.xticks[0], panel.xticks[1], fontsize=7, rotation=45 if len(panel.xticks[0]) > 6 else 0)
        if panel.from_zero:
            ax.set_ylim(bottom=0)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(panel.ylabel)
        ax.grid(True, alpha=0.3)
    return rb.save_figure(fig, path, axes[0][0], "method (mean ± std)", title, legend_width=0.16)


def curve_series(comp: Comparison, metric: str) -> Series:
    """Per method: mean cumulative minutes and mean ± std of ``metric`` at each epoch index
    every seed reached, starting at (0, the warm-up's final value)."""
    out: Series = {}
    start = comp.warmup_curve.final_valid(metric) if comp.warmup_curve is not None else math.nan
    for m in comp.methods:
        curves = [comp.curves[r] for r in _by_method(comp.runs, m)]
        n = min(len(c.epochs) for c in curves)
        minutes = np.array([c.cum_seconds[:n] for c in curves]) / 60.0
        values = np.array([c.valid_values(metric)[:n] for c in curves])
        x, mean = list(minutes.mean(axis=0)), list(values.mean(axis=0))
        std = list(values.std(axis=0, ddof=1)) if len(curves) > 1 else [math.nan] * n
        if not math.isnan(start):
            x, mean, std = [0.0] + x, [start] + mean, [0.0] + std
        out[m] = (x, mean, std)
    return out


def plot_report(comp: Comparison, out_dir: Path) -> Dict[str, Path]:
    """The three figures: validation metric vs training time, WER per length, WER per SNR."""
    written = {}
    written["time_curves"] = plot_panels(
        [Panel(f"valid {m}", curve_series(comp, m), m) for m in CURVE_METRICS],
        out_dir / "valid_vs_time.png",
        "cumulative training wall-clock (min; 0 = end of warm-up)",
        "validation metric vs training time",
    )
    cfg = comp.config
    labels = [b.label for b in cfg.buckets]
    ticks = (list(range(len(labels))), labels)
    written["length"] = plot_panels(
        [
            Panel(
                f"{SHORT_LABEL[mod]}, {tag}",
                {m: (ticks[0], *_stat_lists([comp.length[(tag, mod, m, b)] for b in labels])) for m in comp.methods},
                "WER (%)",
                ticks,
                True,
            )
            for tag in cfg.decode_tags
            for mod in LENGTH_MODALITIES
        ],
        out_dir / "wer_vs_length.png",
        "input length (video frames, 25 fps)",
        f"WER per length bucket ({' + '.join(cfg.sets)})",
    )
    if comp.noise:
        snrs = sorted(cfg.snrs)
        written["snr"] = plot_panels(
            [
                Panel(
                    SHORT_LABEL[mod],
                    {
                        m: (snrs, *_stat_lists([comp.noise[(m, mod, s)] for s in snrs]))
                        for m in comp.methods
                        if (m, mod, snrs[0]) in comp.noise
                    },
                    "WER (%)",
                    (snrs, [rb.snr_label(s) for s in snrs]),
                    True,
                )
                for mod in NOISE_MODALITIES
            ],
            out_dir / "wer_vs_snr.png",
            "SNR (dB)",
            f"WER in babble noise ({cfg.noise_set})",
        )
    return written


def _stat_lists(stats: Sequence[Stat]) -> Tuple[List[float], List[float]]:
    return [s.mean for s in stats], [s.std for s in stats]


# =========================================================================== Markdown


def _table(header: Sequence[str], rows: Iterable[Sequence[str]], left: int = 1) -> List[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * left + "---:|" * (len(header) - left)]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def wer_markdown(comp: Comparison) -> List[str]:
    out = []
    for s in comp.config.sets:
        ref = comp.refs[s]
        for tag in comp.config.decode_tags:
            rows = []
            if any((s, tag, mod) in comp.warmup_wer for mod in TABLE_MODALITIES):
                rows.append(
                    ["warm-up", "1"]
                    + [_fmt_num(comp.warmup_wer.get((s, tag, mod), math.nan)) for mod in TABLE_MODALITIES]
                )
            for m in comp.methods:
                cells = [comp.wer[(s, tag, m, mod)] for mod in TABLE_MODALITIES]
                rows.append([m, str(cells[0].n)] + [c.text() for c in cells])
            out += [f"### {s}, {tag} ({len(ref.text)} utterances, {ref.n_words} words): WER (%)", ""]
            out += _table(["method", "seeds"] + [SHORT_LABEL[m] for m in TABLE_MODALITIES], rows, left=2) + [""]
    return out


def noise_markdown(comp: Comparison) -> List[str]:
    cfg = comp.config
    out = [f"## Babble noise ({cfg.noise_set}, `noise/decode`): WER (%)", ""]
    if not comp.noise:
        return out + ["No run has a noise decoding.", ""]
    snrs = list(cfg.snrs)
    for mod in NOISE_MODALITIES:
        rows = [
            [m] + [comp.noise[(m, mod, s)].text() for s in snrs]
            for m in comp.methods
            if (m, mod, snrs[0]) in comp.noise
        ]
        out += [f"**{SHORT_LABEL[mod]}**", ""] + _table(["method"] + [f"{rb.snr_label(s)} dB" for s in snrs], rows)
        out += [""]
    return out


def failures_markdown(comp: Comparison) -> List[str]:
    cfg = comp.config
    n = len(comp.refs[cfg.long_set].text)
    header = ["method", "decoding"] + [
        f"{SHORT_LABEL[mod]} {k}" for mod in FAILURE_MODALITIES for k in ("loops", "omissions")
    ]
    rows = [
        [m, tag]
        + [comp.failures[(tag, m, mod, k)].text() for mod in FAILURE_MODALITIES for k in ("repetition", "omission")]
        for m in comp.methods
        for tag in cfg.decode_tags
    ]
    return (
        [
            f"## Failures on {cfg.long_set} ({n} hypotheses per run; mean ± std over seeds)",
            "",
            "Loop: an n-gram (1-4 words) repeated at least 3 times back to back, more often than in the "
            "reference. Omission: fewer than 2/3 of the reference's words (`espnet_usr2/analysis/failures.py`).",
            "",
        ]
        + _table(header, rows, left=2)
        + [""]
    )


def bootstrap_markdown(comp: Comparison) -> List[str]:
    cfg = comp.config
    ref = comp.refs[cfg.long_set]
    out = [
        f"## Noise of the long set ({cfg.long_set}: {len(ref.text)} utterances, {ref.n_words} words)",
        "",
        f"Paired bootstrap over utterances ({cfg.n_draws} draws, seed {cfg.bootstrap_seed}), "
        f"{SHORT_LABEL[cfg.bootstrap_modality]} {cfg.bootstrap_tag}: WER difference a - b and its std; "
        f"a difference beyond 2 std is outside the set's noise.",
        "",
    ]
    if not comp.bootstrap:
        return out + ["No method pair to compare.", ""]
    rows = [
        [
            f"{a} - {b}",
            s,
            f"{r.diff:+.2f}",
            f"{r.std:.2f}",
            f"{2 * r.std:.2f}",
            f"{DETECT_POINTS / r.std:.1f}" if r.std > 0 else "-",
        ]
        for (a, b), per_seed in comp.bootstrap.items()
        for s, r in per_seed.items()
    ]
    return (
        out
        + _table(
            ["a - b", "seed", "WER diff (points)", "std", "2 std", f"{DETECT_POINTS:g} points / std"], rows, left=2
        )
        + [""]
    )


def pl_keep_markdown(comp: Comparison) -> List[str]:
    out = ["## Pseudo-labels kept (train `pl_*keep*` statistics, mean over epochs)", ""]
    keys = sorted({k for _, k in comp.pl_keep})
    if not keys:
        return out + ["No run logged a pseudo-label keep fraction.", ""]
    rows = [[m] + [comp.pl_keep[(m, k)].text(3) if (m, k) in comp.pl_keep else "-" for k in keys] for m in comp.methods]
    return out + _table(["method"] + keys, rows) + [""]


def step_time_markdown(comp: Comparison) -> List[str]:
    out = [f"## Cost per training step (ESPnet's `{STEP_TIME_KEY}`: median over epochs, seconds)", ""]
    if not any(st.n for st in comp.step_time.values()):
        return out + [f"No run logged `{STEP_TIME_KEY}`.", ""]
    first = comp.step_time[comp.methods[0]].mean
    rows = [
        [name, str(st.n), st.text(3), f"{st.mean / first:.2f}" if st.n and first > 0 else "-"]
        for name, st in comp.step_time.items()
    ]
    return (
        out
        + [
            f"Wall-clock of one optimiser step (data loading included), mean ± std over seeds; "
            f"the last column is relative to {comp.methods[0]}.",
            "",
        ]
        + _table(["run", "seeds", "s / step", f"x {comp.methods[0]}"], rows, left=2)
        + [""]
    )


def report_markdown(comp: Comparison, plots: Mapping[str, Path]) -> str:
    cfg = comp.config
    runs = [[m, ", ".join(r.seed for r in _by_method(comp.runs, m))] for m in comp.methods]
    md = (
        [
            "# Method comparison",
            "",
            f"Manifest `{cfg.manifest}`, references `{cfg.ref_dir}`, warm-up "
            f"`{cfg.warmup_dir}`. Mean ± sample std over seeds.",
            "",
        ]
        + _table(["method", "seeds"], runs)
        + [""]
    )
    md += ["## Clean WER", ""] + wer_markdown(comp) + noise_markdown(comp) + failures_markdown(comp)
    md += bootstrap_markdown(comp) + ["## Time to accuracy", ""]
    md += [tta_markdown(comp.tta), ""] if comp.tta is not None else ["Not computed (see notes).", ""]
    md += pl_keep_markdown(comp) + step_time_markdown(comp) + ["## Plots", ""]
    md += [f"![{name}]({p.name})" for name, p in plots.items()] + [""]
    if comp.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in comp.notes] + [""]
    return "\n".join(md)


# =========================================================================== JSON and the whole report


def _nested(stats: Mapping[Tuple, Stat]) -> Dict[str, object]:
    """``{(k1, k2, ...): Stat}`` -> ``{k1: {k2: ... stat dict}}`` (SNRs as their labels)."""
    out: Dict[str, object] = {}
    for key, stat in stats.items():
        d = out
        parts = [rb.snr_label(k) if isinstance(k, float) else str(k) for k in key]
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = stat.as_dict()
    return out


def summary_dict(comp: Comparison) -> Dict[str, object]:
    cfg = comp.config
    return {
        "runs": [{"method": r.method, "seed": r.seed, "exp_dir": str(r.exp_dir)} for r in comp.runs],
        "sets": {s: {"utterances": len(r.text), "words": r.n_words} for s, r in comp.refs.items()},
        "wer": _nested(comp.wer),
        "warmup_wer": {f"{s}/{t}/{m}": _json_float(v) for (s, t, m), v in comp.warmup_wer.items()},
        "noise": _nested(comp.noise),
        "failures": _nested(comp.failures),
        "length": _nested(comp.length),
        "length_outside": comp.length_outside,
        "time_to_accuracy": comp.tta.as_dict() if comp.tta is not None else None,
        "pl_keep": _nested(comp.pl_keep),
        "step_seconds": {k: st.as_dict() for k, st in comp.step_time.items()},
        "bootstrap": {
            f"{a} - {b}": {s: vars(r) for s, r in per_seed.items()} for (a, b), per_seed in comp.bootstrap.items()
        },
        "curves": {
            r.name: {
                "cum_seconds": comp.curves[r].cum_seconds,
                **{m: comp.curves[r].valid_values(m) for m in CURVE_METRICS},
            }
            for r in comp.runs
        },
        "config": {
            "decode_tags": list(cfg.decode_tags),
            "sets": list(cfg.sets),
            "long_set": cfg.long_set,
            "noise_set": cfg.noise_set,
            "snrs": [rb.snr_label(s) for s in cfg.snrs],
        },
        "notes": comp.notes,
    }


def _clean_json(obj: object) -> object:
    """NaN -> None all the way down (JSON has no NaN)."""
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if isinstance(obj, dict):
        return {k: _clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean_json(v) for v in obj]
    return obj


def write_report(cfg: ReportConfig) -> Dict[str, Path]:
    """Compute the comparison and write ``results.md``, ``summary.json`` and the PNG plots."""
    comp = compare(cfg)
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    written = plot_report(comp, cfg.out_dir)
    markdown = report_markdown(comp, written)
    written["markdown"] = cfg.out_dir / "results.md"
    written["markdown"].write_text(markdown, encoding="utf-8")
    written["json"] = cfg.out_dir / "summary.json"
    written["json"].write_text(json.dumps(_clean_json(summary_dict(comp)), indent=2) + "\n", encoding="utf-8")
    for n in comp.notes:
        log.warning("%s", n)
    return written
