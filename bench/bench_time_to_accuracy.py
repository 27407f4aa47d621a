#!/usr/bin/env python3
"""Time to accuracy, USR 2.0 vs USR v1, from the runs of one comparison (issue 12 point 3).

    python bench/bench_time_to_accuracy.py --manifest egs2/mini_lrs3/usr2/exp_cmp/runs.tsv \
        --warmup_dir egs2/mini_lrs3/usr2/exp_cmp/warmup [--target_acc 0.8] [--methods usr2 usr1]

For each run of the two methods: the training wall-clock (the reporter's per-epoch ``train``
time in ``checkpoint.pth``; validation excluded) until the validation metric (``acc_av``)
first reaches the target, interpolated linearly between epochs; time 0 is the end of the
warm-up, whose final validation value starts every curve. Default target: the highest value
every compared run reaches. Prints a side-by-side table per seed and the ratio NEW / BASELINE
(mean ± std over seeds where both reached it; the paper reports about 0.5). A run that never
reaches the target is printed as such. Nothing is trained here: the figures are the runs'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

from espnet_usr2.analysis.compare_runs import ComparisonInputError, read_curve, read_manifest
from espnet_usr2.analysis.time_to_accuracy import TimeToAccuracy, time_to_accuracy, tta_markdown


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="runs.tsv: method, seed, exp_dir")
    p.add_argument("--warmup_dir", default=None, help="the warm-up's exp dir (time 0)")
    p.add_argument("--target_acc", type=float, default=None)
    p.add_argument("--metric", default="acc_av", help="validation statistic (higher is better)")
    p.add_argument("--methods", nargs=2, default=["usr2", "usr1"], metavar=("NEW", "BASELINE"))
    return p


def main(cmd: Optional[List[str]] = None) -> TimeToAccuracy:
    args = get_parser().parse_args(cmd)
    try:
        runs = read_manifest(args.manifest)
        curves = {r: read_curve(r.exp_dir) for r in runs if r.method in args.methods}
        start = read_curve(args.warmup_dir).final_valid(args.metric) if args.warmup_dir else None
        tta = time_to_accuracy(curves, tuple(args.methods), args.metric, args.target_acc, start)
    except ComparisonInputError as e:
        print(f"bench_time_to_accuracy: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    print(f"manifest: {Path(args.manifest)}; warm-up: {args.warmup_dir or '(none: curves start at epoch 1)'}")
    print(tta_markdown(tta))
    return tta


if __name__ == "__main__":
    main()
