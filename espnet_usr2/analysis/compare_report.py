"""The comparison report: ``results.md``, ``summary.json`` and the plots of the numbers that
:func:`espnet_usr2.analysis.compare_collect.compare` gathers."""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.analysis.compare_collect import (
    ALL_BUCKETS,
    FAILURE_MODALITIES,
    LENGTH_MODALITIES,
    NOISE_MODALITIES,
    STEP_TIME_KEY,
    TABLE_MODALITIES,
    WARMUP_ROW,
    Comparison,
    ReportConfig,
    compare,
)
from espnet_usr2.analysis.compare_runs import PathLike, runs_of_method
from espnet_usr2.analysis.compare_stats import Stat, fmt_num, json_float
from espnet_usr2.analysis.pseudo_labels import KINDS, bucket_centre, bucket_first_frame
from espnet_usr2.analysis.time_to_accuracy import tta_markdown
from espnet_usr2.utils.modalities import AUDIO, AUDIOVISUAL, VIDEO

log = logging.getLogger(__name__)

SHORT_LABEL = {VIDEO: "V", AUDIO: "A", AUDIOVISUAL: "AV"}
DETECT_POINTS = 5.0  # the WER difference the long set must resolve (issue 12: beyond its noise)
CURVE_METRICS = ("cer_ctc_av", "acc_av")  # CTC greedy CER (a real decoding) and decoder accuracy


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
    plt = rb.agg_pyplot()
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
        curves = [comp.curves[r] for r in runs_of_method(comp.runs, m)]
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
    if comp.pl_quality:
        written["pl_length"] = plot_pl_quality(comp, out_dir / "pl_wer_vs_length.png")
    return written


def pl_teachers(comp: Comparison) -> List[str]:
    """The teachers whose pseudo-labels were scored: the warm-up first, then the methods."""
    scored = {t for _, t, *_ in comp.pl_quality}
    return [t for t in [WARMUP_ROW, *comp.methods] if t in scored]


def pl_buckets(comp: Comparison) -> List[Tuple[str, str]]:
    """(set, length bucket) pairs scored, shortest first (buckets are "lo-hi" in frames)."""
    pairs = {(s, b) for s, _, _, b, _ in comp.pl_quality if b != ALL_BUCKETS}
    return sorted(pairs, key=lambda p: (bucket_first_frame(p[1]), p[0]))


def plot_pl_quality(comp: Comparison, path: Path) -> Path:
    """Pseudo-label WER against input length, a panel per kind of label, a line per teacher: the
    paper's length-generalisation figure in miniature (every scored set on one length axis)."""
    buckets = pl_buckets(comp)
    sets = list(dict.fromkeys(s for s, _ in buckets))
    panels = []
    for kind in KINDS:
        series: Series = {}
        for t in pl_teachers(comp):
            for set_name in sets:  # a line per teacher and set: the sets' buckets may overlap
                points = [
                    (bucket_centre(b), comp.pl_quality[(s, t, kind, b, "wer")])
                    for s, b in buckets
                    if s == set_name and (s, t, kind, b, "wer") in comp.pl_quality
                ]
                label = t if len(sets) == 1 else f"{t}, {set_name}"
                series[label] = ([x for x, _ in points], *_stat_lists([st for _, st in points]))
        panels.append(Panel(f"{kind} pseudo-labels", series, "WER (%)", from_zero=True))
    return plot_panels(
        panels,
        path,
        "input length (video frames, 25 fps)",
        "teachers' pseudo-label WER vs length",
        ncols=3,
    )


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
                    + [fmt_num(comp.warmup_wer.get((s, tag, mod), math.nan)) for mod in TABLE_MODALITIES]
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


def pl_quality_markdown(comp: Comparison) -> List[str]:
    """Per scored set: WER, failures and the share each confidence filter keeps, per kind of
    pseudo-label and teacher; then WER per length bucket."""
    out = ["## The teachers' pseudo-labels against the truth", ""]
    if not comp.pl_quality:
        return out + ["No teacher's pseudo-labels were scored (run_compare.sh --pl_sets).", ""]
    out += [
        f"Each teacher labels clips whose transcripts training never reads: `{WARMUP_ROW}` is the warm-up "
        "acting as the teacher (every run's EMA teacher starts as it), a method's row its runs' EMA "
        "teachers at the end (mean ± std over seeds). `ctc`: greedy CTC, collapsed; `att_tf`: CTC-driven "
        "teacher forcing (USR 2.0); `ar`: autoregressive greedy within the length limit. Loops and "
        "omissions are counts of clips; kept: the share of each label the confidence filter keeps.",
        "",
    ]
    teachers = pl_teachers(comp)
    q = comp.pl_quality

    def cell(s: str, t: str, kind: str, bucket: str, f: str, digits: int = 1) -> str:
        st = q.get((s, t, kind, bucket, f))
        return "-" if st is None else st.text(digits)

    for s in sorted({k[0] for k in q}):
        n = next(st for (s2, _, _, b, f), st in q.items() if s2 == s and b == ALL_BUCKETS and f == "utterances")
        out += [f"### {s} ({n.mean:.0f} clips)", ""]
        rows = [
            [t]
            + [cell(s, t, k, ALL_BUCKETS, "wer") for k in KINDS]
            + [
                cell(s, t, k, ALL_BUCKETS, f, 2 if f == "kept" else 1)
                for f in ("loops", "omissions", "kept")
                for k in KINDS
            ]
            for t in teachers
        ]
        header = ["teacher"] + [f"{k} WER" for k in KINDS]
        header += [f"{k} {f}" for f in ("loops", "omissions", "kept") for k in KINDS]
        out += _table(header, rows) + [""]
    out += ["WER (%) per length bucket (video frames):", ""]
    rows = [[s, b] + [cell(s, t, k, b, "wer") for k in KINDS for t in teachers] for s, b in pl_buckets(comp)]
    out += _table(["set", "frames"] + [f"{k} {t}" for k in KINDS for t in teachers], rows, left=2) + [""]
    return out


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
    runs = [[m, ", ".join(r.seed for r in runs_of_method(comp.runs, m))] for m in comp.methods]
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
    md += pl_keep_markdown(comp) + pl_quality_markdown(comp) + step_time_markdown(comp) + ["## Plots", ""]
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
        "warmup_wer": {f"{s}/{t}/{m}": json_float(v) for (s, t, m), v in comp.warmup_wer.items()},
        "noise": _nested(comp.noise),
        "failures": _nested(comp.failures),
        "length": _nested(comp.length),
        "length_outside": comp.length_outside,
        "time_to_accuracy": comp.tta.as_dict() if comp.tta is not None else None,
        "pl_keep": _nested(comp.pl_keep),
        "pl_quality": _nested(comp.pl_quality),
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
