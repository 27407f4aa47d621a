"""Time to accuracy: the training wall-clock until a validation metric reaches a target.

Time 0 is the end of the warm-up; its last epoch's validation values start every curve.  Time
to accuracy interpolates linearly between epochs (the first crossing of the target between two
validation points); a run that never reaches the target is reported as such, not dropped.

The same crossing is also found in optimiser steps.  The steps ratio times the ratio of the two
methods' cost per step measured on a GPU (``bench/results/``) is the time to accuracy a GPU user
would pay -- a product of two measurements on different machines, reported as such next to the
CPU wall-clock ratio (a CPU prices the autoregressive pseudo-labelling loop differently).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from espnet_usr2.analysis.compare_runs import ComparisonInputError, Curve, Run
from espnet_usr2.analysis.compare_stats import Stat, fmt_num


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
    steps: Dict[str, Dict[str, Optional[float]]] = field(default_factory=dict)  # method -> seed -> steps
    # method -> seconds per step measured on a GPU, and where (the product's second factor)
    gpu_step_seconds: Mapping[str, float] = field(default_factory=dict)
    gpu_step_source: str = ""
    start_value: Optional[float] = None  # the warm-up's value at time 0 (None: not known)

    @property
    def reached_at_start(self) -> bool:
        """True when the warm-up already meets the target: every run then "reaches" it at time 0
        and the metric cannot time the continuations."""
        return self.start_value is not None and self.start_value >= self.target

    def ratios(self) -> Dict[str, float]:
        """Wall-clock ratio per seed both methods ran and reached the target."""
        return _ratios(self.seconds, self.methods)

    def step_ratios(self) -> Dict[str, float]:
        """Optimiser-steps ratio per seed both methods ran and reached the target."""
        return _ratios(self.steps, self.methods)

    def gpu_cost_ratio(self) -> Optional[float]:
        """``methods[0] / methods[1]`` seconds per step on the GPU, if both were given."""
        a, b = (self.gpu_step_seconds.get(m) for m in self.methods)
        return a / b if a and b else None

    def gpu_ratios(self) -> Dict[str, float]:
        """Per seed: steps ratio x GPU per-step cost ratio (empty without the GPU figures)."""
        cost = self.gpu_cost_ratio()
        return {} if cost is None else {s: r * cost for s, r in self.step_ratios().items()}

    def as_dict(self) -> Dict[str, object]:
        return {
            "metric": self.metric,
            "target": self.target,
            "target_is_default": self.target_is_default,
            "start_value": self.start_value,
            "reached_at_start": self.reached_at_start,
            "methods": list(self.methods),
            "seconds": self.seconds,
            "total_seconds": self.total_seconds,
            "best": self.best,
            "ratio": Stat(self.ratios()).as_dict(),
            "steps": self.steps,
            "steps_ratio": Stat(self.step_ratios()).as_dict(),
            "gpu_step_seconds": dict(self.gpu_step_seconds),
            "gpu_step_source": self.gpu_step_source,
            "gpu_product_ratio": Stat(self.gpu_ratios()).as_dict(),
            "interpolation": "linear in time (in steps) between validation points",
        }


def _ratios(values: Mapping[str, Mapping[str, Optional[float]]], methods: Tuple[str, str]) -> Dict[str, float]:
    num, den = (values.get(m, {}) for m in methods)
    return {s: num[s] / den[s] for s in num if s in den and num[s] is not None and den[s]}


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
    gpu_step_seconds: Optional[Mapping[str, float]] = None,
    gpu_step_source: str = "",
) -> TimeToAccuracy:
    """Time to accuracy of the runs of ``methods`` (e.g. ("usr2", "usr1")); ``target`` defaults
    to :func:`default_target` over those runs.  ``start_value`` is the warm-up's, at time 0;
    ``gpu_step_seconds``: each method's seconds per step measured on a GPU (``gpu_step_source``)."""
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
    steps: Dict[str, Dict[str, Optional[float]]] = {m: {} for m in methods}
    for run, c in chosen.items():
        values = c.valid_values(metric)
        seconds[run.method][run.seed] = time_to_reach(c.cum_seconds, values, target, start)
        total[run.method][run.seed] = float(sum(c.train_seconds))
        best[run.method][run.seed] = _best(values)
        known = not any(math.isnan(x) for x in c.steps) and len(c.steps) == len(values)
        steps[run.method][run.seed] = time_to_reach(c.steps, values, target, start) if known else None
    return TimeToAccuracy(
        metric,
        float(target),
        is_default,
        tuple(methods),
        seconds,
        total,
        best,
        steps,
        dict(gpu_step_seconds or {}),
        gpu_step_source,
        None if start is None else start[1],
    )


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
        *_reached_at_start_warning(tta),
        f"| seed | {a} (min) | {b} (min) | {a} / {b} | {a} best | {b} best | {a} total | {b} total |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in seeds:
        ratio = f"{ratios[s]:.2f}" if s in ratios else "-"
        lines.append(
            f"| {s} | {_minutes(tta.seconds[a].get(s))} | {_minutes(tta.seconds[b].get(s))} | {ratio} | "
            f"{fmt_num(tta.best[a].get(s), 4)} | {fmt_num(tta.best[b].get(s), 4)} | "
            f"{_minutes(tta.total_seconds[a].get(s))} | {_minutes(tta.total_seconds[b].get(s))} |"
        )
    lines += [
        "",
        f"Ratio {a} / {b}: **{Stat(ratios).text(2)}** over {len(ratios)} seed(s) where both reached the target.",
        "",
        _steps_markdown(tta),
    ]
    return "\n".join(lines)


def _reached_at_start_warning(tta: TimeToAccuracy) -> List[str]:
    """Lines saying the target is no target (the warm-up meets it); none otherwise."""
    if not tta.reached_at_start:
        return []
    return [
        f"**The warm-up's own value ({tta.start_value:.4f}) already meets the target**: every run "
        f"reaches it at time 0, so `{tta.metric}` cannot time these continuations (no ratio). Where "
        f"the runs fall below the warm-up first and climb back, the training curves show it; pick a "
        f"metric or a target above the warm-up's value that the runs reach (`--tta_metric`, `--target_acc`).",
        "",
    ]


def _steps(value: Optional[float]) -> str:
    return "not reached" if value is None else f"{value:.1f}"


def _steps_markdown(tta: TimeToAccuracy) -> str:
    """Optimiser steps to the target, their ratio, and the GPU product when the costs are given."""
    a, b = tta.methods
    steps_ratios = tta.step_ratios()
    seeds = list(dict.fromkeys([*tta.steps.get(a, {}), *tta.steps.get(b, {})]))
    rows = [
        f"| {s} | {_steps(tta.steps[a].get(s))} | {_steps(tta.steps[b].get(s))} | "
        + (f"{steps_ratios[s]:.2f}" if s in steps_ratios else "-")
        + " |"
        for s in seeds
    ]
    lines = [
        "In optimiser steps (the same crossing):",
        "",
        f"| seed | {a} (steps) | {b} (steps) | {a} / {b} |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        f"Steps ratio {a} / {b}: **{Stat(steps_ratios).text(2)}**.",
    ]
    cost = tta.gpu_cost_ratio()
    if cost is None:
        return "\n".join(lines + [f"No GPU cost per step given for both {a} and {b}: no GPU product."])
    product = Stat(tta.gpu_ratios())
    lines += [
        "",
        f"**Time to accuracy on a GPU, as a product** (not measured on a GPU): steps ratio x GPU seconds per "
        f"step {a} {tta.gpu_step_seconds[a]:.3f} / {b} {tta.gpu_step_seconds[b]:.3f} = {cost:.3f} "
        f"({tta.gpu_step_source or 'source not given'}): **{product.text(2)}**, against "
        f"{Stat(tta.ratios()).text(2)} in CPU wall-clock above.",
    ]
    return "\n".join(lines)
