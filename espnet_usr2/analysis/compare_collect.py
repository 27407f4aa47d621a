"""Methods x seeds compared from one supervised warm-up: every number of the report, in one place.

The paper's claims are comparative (USR 2.0 vs supervised-only and USR v1, and its
ablations; Sec. 5, Fig. 3-5, Tables 1 and 10-12).  :func:`compare` reads what
``egs2/mini_lrs3/usr2/run_compare.sh`` leaves behind (:mod:`espnet_usr2.analysis.compare_runs`)
and gathers the WER tables, failures, time to accuracy, pseudo-labels kept, the teachers'
pseudo-labels scored against the truth, the cost of a step and the paired bootstraps;
:mod:`espnet_usr2.analysis.compare_report` writes them out.

The cost of a training step is ESPnet's ``train_time`` statistic (the reporter's mean per
epoch of each optimiser step's wall-clock), its median over epochs.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.analysis.compare_runs import (
    ComparisonInputError,
    Curve,
    Reference,
    Run,
    corpus_wer,
    hyp_path,
    methods_of,
    noise_hyp_path,
    read_curve,
    read_hyp,
    read_manifest,
    read_reference,
    runs_of_method,
)
from espnet_usr2.analysis.compare_stats import Bootstrap, Stat, paired_bootstrap
from espnet_usr2.analysis.failures import count_failures
from espnet_usr2.analysis.pseudo_labels import RESULTS_JSON
from espnet_usr2.analysis.time_to_accuracy import TimeToAccuracy, time_to_accuracy
from espnet_usr2.utils.modalities import AUDIO, AUDIOVISUAL, VIDEO

TABLE_MODALITIES = (VIDEO, AUDIO, AUDIOVISUAL)
NOISE_MODALITIES = (AUDIO, AUDIOVISUAL)  # video-only decoding does not hear the noise
FAILURE_MODALITIES = (AUDIOVISUAL, VIDEO, AUDIO)
LENGTH_MODALITIES = (AUDIOVISUAL, VIDEO)
# fractions of pseudo-labels kept that the semi-supervised objectives log: pl_ctc_keep (and its
# pl_ctc_keep_all / pl_ctc_keep_emitting readings), pl_att_keep, pl_frame_keep (USR v1)
PL_KEEP_PATTERN = re.compile(r"^pl_(\w+_)?keep(_\w+)?$")
# ESPnet's Trainer registers the wall-clock of every optimiser step (data loading, forward,
# backward, update) as ``train_time``; the reporter keeps its mean per epoch
STEP_TIME_KEY = "train_time"
WARMUP_ROW = "warm-up"
# run_compare.sh scores each teacher's pseudo-labels into <run>/pl_quality/<set>/ (usr2_pl_quality)
PL_QUALITY_DIR = "pl_quality"
PL_QUALITY_FIELDS = ("utterances", "wer", "loops", "omissions", "kept")
ALL_BUCKETS = "all"


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
    gpu_step_seconds: Mapping[str, float] = field(default_factory=dict)  # method -> s / step on a GPU
    gpu_step_source: str = ""


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
    # (set, teacher, kind, length bucket or "all", field): the warm-up (WARMUP_ROW: where every
    # teacher starts) and each method's EMA teachers at the end, scored against the truth
    pl_quality: Dict[Tuple[str, str, str, str, str], Stat]
    step_time: Dict[str, Stat]  # method (or warm-up / --step_cost_dirs name) -> seconds per step
    bootstrap: Dict[Tuple[str, str], Dict[str, Bootstrap]]  # (a, b) -> seed -> result
    notes: List[str]


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
                            for r in runs_of_method(runs, m)
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
                for r in runs_of_method(runs, m):
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


def read_pl_quality(exp_dir: Path) -> Dict[str, Dict[str, Dict[str, Dict[str, float]]]]:
    """``{set: {bucket: {kind: row}}}`` of a run's scored pseudo-labels (none: empty); one teacher
    setting per file, as run_compare.sh scores them."""
    out = {}
    for path in sorted((exp_dir / PL_QUALITY_DIR).glob(f"*/{RESULTS_JSON}")):
        settings = json.loads(path.read_text(encoding="utf-8"))
        if len(settings) != 1:
            raise ComparisonInputError(f"{path}: {len(settings)} teacher settings; the report compares one per run")
        out[path.parent.name] = next(iter(settings.values()))
    return out


def collect_pl_quality(cfg: ReportConfig, runs: Sequence[Run]) -> Dict[Tuple[str, str, str, str, str], Stat]:
    """The teachers' pseudo-labels against the truth: the warm-up as :data:`WARMUP_ROW` (one
    value), each method's runs' EMA teachers (mean over seeds); runs with no teacher (supervised)
    have no scores and no rows."""
    sources = [(WARMUP_ROW, "-", cfg.warmup_dir)] if cfg.warmup_dir is not None else []
    sources += [(r.method, r.seed, r.exp_dir) for r in runs]
    values: Dict[Tuple[str, str, str, str, str], Dict[str, float]] = {}
    for teacher, seed, exp_dir in sources:
        for set_name, table in read_pl_quality(exp_dir).items():
            for bucket, rows in table.items():
                for kind, row in rows.items():
                    for f in PL_QUALITY_FIELDS:
                        values.setdefault((set_name, teacher, kind, bucket, f), {})[seed] = float(row[f])
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
        seeds_a = {r.seed: r for r in runs_of_method(runs, a)}
        seeds_b = {r.seed: r for r in runs_of_method(runs, b)}
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
        tta = time_to_accuracy(
            curves, cfg.tta_methods, cfg.tta_metric, cfg.target, start, cfg.gpu_step_seconds, cfg.gpu_step_source
        )
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
        pl_quality=collect_pl_quality(cfg, runs),
        step_time=collect_step_time(cfg, runs, curves, warmup_curve),
        bootstrap=collect_bootstrap(cfg, runs, refs[cfg.long_set], notes) if cfg.bootstrap_pairs else {},
        notes=notes,
    )
