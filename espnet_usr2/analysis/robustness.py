"""The paper's robustness analyses (Sec. 5.1, 5.2): WER by input length, WER in babble noise.

* **Length** -- utterances are bucketed by their number of video frames (25 fps) in steps of
  50 from 50 to 600 frames; buckets are half-open ``[lo, hi)`` except the last, which also
  holds ``hi`` (600).  Utterances outside 50-600 are counted, not scored.  WER per bucket is
  the corpus-level rate (errors summed over the bucket's utterances / reference words),
  with the same alignment as sclite (:func:`espnet_usr2.scoring.sclite.count_errors`).
* **Noise** -- WER per SNR, clean first; the noisy copies of the test set are made by
  :mod:`espnet_usr2.data.babble` (babble mixed in at an exact SNR).
* **Reports** -- Markdown tables and PNG plots (matplotlib, Agg backend), one line per
  modality / decoding method; the noise table for all samples and for those longer than 100
  frames.

Decoding is not done here: hypotheses come in as Kaldi ``text`` files per condition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from espnet_usr2.data.babble import SAMPLE_RATE
from espnet_usr2.scoring.sclite import ErrorCounts, ScoringInputError, count_errors, ids_excerpt, match_hypotheses

PathLike = Union[str, Path]

FRAME_RATE = 25
SAMPLES_PER_FRAME = SAMPLE_RATE // FRAME_RATE  # 640
PAPER_SNRS_DB: Tuple[float, ...] = (10.0, 5.0, 0.0, -5.0)
CLEAN = math.inf  # the SNR of a condition without added noise
DEFAULT_MIN_FRAMES = 100  # the paper's "longer than 100 frames" subset


# =========================================================================== lengths


def read_num_frames(path: PathLike, samples_per_frame: Optional[int] = None) -> Dict[str, int]:
    """Frames per utterance from ``utt2num_frames`` (``uttid N``) or an ESPnet shape file.

    Shape files hold ``uttid T,H,W[,C]``: the first number is used.  Give
    ``samples_per_frame`` (640 at 16 kHz / 25 fps) when the file counts audio samples
    (e.g. ``speech_shape``); the count is then rounded to whole video frames.
    """
    p = Path(path)
    if not p.is_file():
        raise ScoringInputError(f"frame count file {str(p)!r} does not exist")
    frames: Dict[str, int] = {}
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ScoringInputError(f"{p}:{lineno}: expected 'uttid N' or 'uttid T,H,W', got {line!r}")
        try:
            value = int(fields[1].split(",")[0])
        except ValueError:
            raise ScoringInputError(f"{p}:{lineno}: {fields[1]!r} is not a frame count") from None
        frames[fields[0]] = int(round(value / samples_per_frame)) if samples_per_frame else value
    if not frames:
        raise ScoringInputError(f"frame count file {str(p)!r} is empty")
    return frames


@dataclass(frozen=True)
class Bucket:
    """Input lengths ``lo <= n < hi`` (``<= hi`` for the last bucket)."""

    lo: int
    hi: int
    closed: bool = False  # whether ``hi`` itself belongs to the bucket

    @property
    def label(self) -> str:
        return f"{self.lo}-{self.hi}"

    def __contains__(self, n: int) -> bool:
        return self.lo <= n < self.hi or (self.closed and n == self.hi)


def make_buckets(lo: int = 50, hi: int = 600, step: int = 50) -> List[Bucket]:
    """The paper's buckets: 50-100, 100-150, ..., 550-600 frames."""
    if step <= 0 or hi <= lo or (hi - lo) % step:
        raise ValueError(f"need lo < hi with (hi - lo) a multiple of step; got {lo}, {hi}, {step}")
    edges = list(range(lo, hi + 1, step))
    return [Bucket(a, b, closed=(b == hi)) for a, b in zip(edges[:-1], edges[1:])]


def bucket_of(n_frames: int, buckets: Sequence[Bucket]) -> Optional[Bucket]:
    """The bucket holding ``n_frames``, or None when it is outside all buckets."""
    for b in buckets:
        if n_frames in b:
            return b
    return None


# =========================================================================== WER tables


@dataclass
class WerCell:
    """Error counts summed over a set of utterances."""

    counts: ErrorCounts = field(default_factory=ErrorCounts)
    n_utts: int = 0

    @property
    def wer(self) -> float:
        """Percent; NaN for a cell without reference words."""
        n = self.counts.n_ref
        return 100.0 * self.counts.errors / n if n else math.nan

    def add(self, counts: ErrorCounts) -> None:
        self.counts = self.counts + counts
        self.n_utts += 1


def utterance_counts(
    ref: Mapping[str, str], hyp: Mapping[str, str], missing_hyp: str = "error", extra_hyp: str = "error"
) -> Tuple[Dict[str, ErrorCounts], List[str]]:
    """Word-level (C, S, D, I) per utterance, with sclite's alignment; plus notes.

    Hypotheses are matched to references as in scoring: missing or extra ids are an error
    unless ``missing_hyp="empty"`` / ``extra_hyp="ignore"``.
    """
    matched = match_hypotheses(ref, hyp, missing_hyp, extra_hyp)
    counts = {u: count_errors(matched.ref[u].split(), matched.hyp[u].split()) for u in matched.ids}
    return counts, matched.notes


def _require_frames(ids: Iterable[str], frames: Mapping[str, int], what: str) -> None:
    missing = [u for u in ids if u not in frames]
    if missing:
        raise ScoringInputError(f"{what}: no frame count for {len(missing)} utterances: {ids_excerpt(missing)}")


@dataclass
class LengthTable:
    """WER per length bucket, per condition (modality / decoding method)."""

    buckets: List[Bucket]
    conditions: List[str]
    cells: Dict[Tuple[str, str], WerCell]  # (condition, bucket label) -> cell
    total: Dict[str, WerCell]  # per condition, all in-range utterances
    n_outside: Dict[str, int]  # per condition, utterances outside every bucket
    notes: List[str] = field(default_factory=list)

    def wer(self, condition: str, bucket: Bucket) -> float:
        return self.cells[(condition, bucket.label)].wer


def wer_by_length(
    ref: Mapping[str, str],
    hyps: Mapping[str, Mapping[str, str]],
    frames: Mapping[str, int],
    buckets: Optional[Sequence[Bucket]] = None,
    missing_hyp: str = "error",
    extra_hyp: str = "error",
) -> LengthTable:
    """Bucket every condition's utterances by length and compute WER per bucket."""
    buckets = list(buckets) if buckets is not None else make_buckets()
    cells, total, outside, notes = {}, {}, {}, []
    for cond, hyp in hyps.items():
        counts, cond_notes = utterance_counts(ref, hyp, missing_hyp, extra_hyp)
        notes += [f"{cond}: {n}" for n in cond_notes]
        _require_frames(counts, frames, f"condition {cond!r}")
        total[cond] = WerCell()
        outside[cond] = 0
        for b in buckets:
            cells[(cond, b.label)] = WerCell()
        for uid, c in counts.items():
            b = bucket_of(frames[uid], buckets)
            if b is None:
                outside[cond] += 1
                continue
            cells[(cond, b.label)].add(c)
            total[cond].add(c)
    return LengthTable(buckets, list(hyps), cells, total, outside, notes)


def parse_snr(text: str) -> float:
    """``"10"``, ``"-5"``, ``"0.5"`` -> dB; ``"clean"`` / ``"inf"`` -> no added noise."""
    if text.strip().lower() in ("clean", "inf", "none"):
        return CLEAN
    return float(text)


def snr_label(snr: float) -> str:
    return "clean" if math.isinf(snr) else f"{snr:g}"


def condition_name(snr: float) -> str:
    """Directory-safe SNR label: ``10`` -> ``snr10``, ``-5`` -> ``snrm5``, clean -> ``clean``
    (the noise sweep's ``<work_dir>/decode/<condition>/`` and the comparison report read these)."""
    return "clean" if math.isinf(snr) else "snr" + snr_label(snr).replace("-", "m")


@dataclass
class NoiseTable:
    """WER per SNR, per condition, for each subset (all samples, longer than N frames)."""

    conditions: List[str]
    snrs: List[float]  # clean first, then decreasing SNR
    subsets: List[str]
    cells: Dict[Tuple[str, str, float], WerCell]  # (subset, condition, snr) -> cell
    notes: List[str] = field(default_factory=list)

    def wer(self, subset: str, condition: str, snr: float) -> float:
        cell = self.cells.get((subset, condition, snr))
        return cell.wer if cell is not None else math.nan


def subset_label(min_frames: int) -> str:
    return f"longer than {min_frames} frames"


def wer_by_snr(
    ref: Mapping[str, str],
    hyps: Mapping[Tuple[str, float], Mapping[str, str]],
    frames: Optional[Mapping[str, int]] = None,
    min_frames: int = DEFAULT_MIN_FRAMES,
    missing_hyp: str = "error",
    extra_hyp: str = "error",
) -> NoiseTable:
    """WER of every (condition, SNR) hypothesis set, for all samples and, given frame counts,
    for the samples longer than ``min_frames`` frames (strictly, as "longer than" says)."""
    subsets = ["all samples"] + ([subset_label(min_frames)] if frames is not None else [])
    cells: Dict[Tuple[str, str, float], WerCell] = {}
    notes: List[str] = []
    for (cond, snr), hyp in hyps.items():
        counts, cond_notes = utterance_counts(ref, hyp, missing_hyp, extra_hyp)
        notes += [f"{cond} @ {snr_label(snr)}: {n}" for n in cond_notes]
        if frames is not None:
            _require_frames(counts, frames, f"condition {cond!r} at SNR {snr_label(snr)}")
        for subset in subsets:
            cell = cells.setdefault((subset, cond, snr), WerCell())
            for uid, c in counts.items():
                if subset == subsets[0] or frames[uid] > min_frames:
                    cell.add(c)
    conditions = list(dict.fromkeys(c for c, _ in hyps))
    snrs = sorted({s for _, s in hyps}, reverse=True)
    return NoiseTable(conditions, snrs, subsets, cells, notes)


# =========================================================================== Markdown


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def length_markdown(table: LengthTable) -> str:
    """WER (%) per length bucket; ``#utts`` is per condition when the conditions differ."""
    conds = table.conditions
    same_counts = all(len({table.cells[(c, b.label)].n_utts for c in conds}) == 1 for b in table.buckets)
    lines = ["| frames (25 fps) | #utts | " + " | ".join(conds) + " |", "|---|---:|" + "---:|" * len(conds)]
    for b in table.buckets:
        cells = [table.cells[(c, b.label)] for c in conds]
        n = str(cells[0].n_utts) if same_counts else "/".join(str(x.n_utts) for x in cells)
        lines.append(f"| {b.label} | {n} | " + " | ".join(_fmt(x.wer) for x in cells) + " |")
    totals = [table.total[c] for c in conds]
    n = str(totals[0].n_utts) if same_counts else "/".join(str(x.n_utts) for x in totals)
    lines.append(
        f"| **all {table.buckets[0].lo}-{table.buckets[-1].hi}** | {n} | "
        + " | ".join(f"**{_fmt(x.wer)}**" for x in totals)
        + " |"
    )
    outside = {table.n_outside[c] for c in conds}
    if outside != {0}:
        lines += [
            "",
            "Outside the buckets (not scored): "
            + ", ".join(f"{c}: {table.n_outside[c]}" for c in conds)
            + " utterances.",
        ]
    return "\n".join(lines)


def noise_markdown(table: NoiseTable) -> str:
    """One table per subset: rows SNR, columns conditions, cells WER (%)."""
    out = []
    for subset in table.subsets:
        n_utts = {table.cells[k].n_utts for k in table.cells if k[0] == subset}
        n = f" ({n_utts.pop()} utterances)" if len(n_utts) == 1 else ""
        out += [
            f"**{subset}**{n}",
            "",
            "| SNR (dB) | " + " | ".join(table.conditions) + " |",
            "|---|" + "---:|" * len(table.conditions),
        ]
        for snr in table.snrs:
            out.append(
                f"| {snr_label(snr)} | " + " | ".join(_fmt(table.wer(subset, c, snr)) for c in table.conditions) + " |"
            )
        out.append("")
    return "\n".join(out).rstrip() + "\n"


# =========================================================================== plots


def agg_pyplot():
    """matplotlib with the file-only Agg backend (no display on servers / CI)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(
    fig, path: PathLike, legend_ax=None, legend_title: str = "", title: str = "", legend_width: float = 0.14
) -> Path:
    """Write ``fig`` to ``path`` (parents created) and close it; with ``legend_ax``, one figure
    legend of that axes' lines at the right (outside the panels, where it hides no point) and
    ``title`` over all panels."""
    plt = agg_pyplot()
    if legend_ax is not None:
        handles, labels = legend_ax.get_legend_handles_labels()
        fig.legend(handles, labels, title=legend_title, loc="center right")
        fig.suptitle(title)
        fig.tight_layout(rect=(0.0, 0.0, 1.0 - legend_width, 1.0))
    else:
        fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_wer_vs_length(table: LengthTable, path: PathLike, title: str = "WER vs input length") -> Path:
    """One line per condition over the length buckets; x ticks show the bucket sizes."""
    plt = agg_pyplot()
    fig, ax = plt.subplots(figsize=(9.5, 4.5), dpi=120)
    x = np.arange(len(table.buckets))
    for cond in table.conditions:
        ax.plot(x, [table.wer(cond, b) for b in table.buckets], marker="o", linewidth=1.8, label=cond)
    first = table.conditions[0]
    ax.set_xticks(x, [f"{b.label}\n(n={table.cells[(first, b.label)].n_utts})" for b in table.buckets], fontsize=8)
    ax.set_xlabel("input length (video frames at 25 fps)")
    ax.set_ylabel("WER (%)")
    ax.set_title(title)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    # outside the axes: a legend inside would hide points of some line sooner or later
    ax.legend(title="modality / decoding", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return save_figure(fig, path)


def plot_wer_vs_snr(table: NoiseTable, path: PathLike, title: str = "WER vs SNR (babble noise)") -> Path:
    """One panel per subset, one line per condition; 'clean' sits right of the highest SNR."""
    plt = agg_pyplot()
    noisy = sorted(s for s in table.snrs if not math.isinf(s))
    has_clean = any(math.isinf(s) for s in table.snrs)
    if noisy:
        step = (noisy[-1] - noisy[0]) / max(len(noisy) - 1, 1) or 5.0
        clean_x = noisy[-1] + step
    else:
        clean_x = 0.0
    order = noisy + ([CLEAN] if has_clean else [])
    xs = [clean_x if math.isinf(s) else s for s in order]
    fig, axes = plt.subplots(
        1, len(table.subsets), figsize=(5.5 * len(table.subsets) + 2.0, 4.5), dpi=120, sharey=True, squeeze=False
    )
    for ax, subset in zip(axes[0], table.subsets):
        for cond in table.conditions:
            ax.plot(xs, [table.wer(subset, cond, s) for s in order], marker="o", linewidth=1.8, label=cond)
        ax.set_xticks(xs, [snr_label(s) for s in order])
        ax.set_xlabel("SNR (dB)")
        ax.set_title(subset)
        ax.grid(True, alpha=0.3)
        ax.set_ylim(bottom=0)
    axes[0][0].set_ylabel("WER (%)")
    return save_figure(fig, path, axes[0][0], "modality / decoding", title)
