#!/usr/bin/env python3
"""The comparison report of methods x seeds trained from one warm-up (``run_compare.sh``)::

    python -m espnet_usr2.bin.usr2_compare_report --manifest exp_cmp/runs.tsv --ref_dir dump_cmp \\
        --warmup_dir exp_cmp/warmup --decode_tags greedy beam --sets test test_long \\
        --out_dir exp_cmp/compare

``runs.tsv``: header ``method<TAB>seed<TAB>exp_dir``, one row per run (exp_dir relative to the
manifest's directory or absolute).  Reads each run's ``checkpoint.pth`` (training curves),
``<exp_dir>/<tag>/<set>/<video|audio|audiovisual>/text`` and, where present,
``<exp_dir>/noise/decode/snr<label>/<audio|audiovisual>/text``; references from
``<ref_dir>/<set>/{text,utt2num_frames}``; ``--step_cost_dirs NAME=DIR`` adds runs outside
the manifest (e.g. the pre-training) to the table of seconds per training step.  Writes
``results.md``, ``summary.json``, ``valid_vs_time.png``, ``wer_vs_length.png`` and
``wer_vs_snr.png`` to ``--out_dir``
(see :mod:`espnet_usr2.analysis.compare_report`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.analysis.compare_collect import ReportConfig
from espnet_usr2.analysis.compare_report import write_report
from espnet_usr2.scoring.sclite import ScoringInputError


def _pair(spec: str) -> Tuple[str, str]:
    """``a:b`` -> (a, b)."""
    parts = spec.split(":")
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"{spec!r}: expected METHOD_A:METHOD_B, e.g. usr2:usr1")
    return parts[0], parts[1]


def _named_dir(spec: str) -> Tuple[str, Path]:
    """``name=dir`` -> (name, Path(dir))."""
    name, sep, path = spec.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected NAME=EXP_DIR, e.g. pretrain=exp_cmp/pretrain_x")
    return name, Path(path)


def _method_seconds(spec: str) -> Tuple[str, float]:
    """``method=seconds`` -> (method, seconds > 0)."""
    name, sep, value = spec.partition("=")
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not sep or not name or seconds <= 0:
        raise argparse.ArgumentTypeError(f"{spec!r}: expected METHOD=SECONDS (> 0), e.g. usr2=0.643")
    return name, seconds


def get_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", required=True, help="runs.tsv: method, seed, exp_dir")
    p.add_argument("--ref_dir", required=True, help="dump dir with <set>/text and <set>/utt2num_frames")
    p.add_argument("--out_dir", required=True)
    p.add_argument("--warmup_dir", default=None, help="the warm-up's exp dir: time 0 of the training curves")
    p.add_argument("--decode_tags", nargs="+", default=["greedy", "beam"])
    p.add_argument("--sets", nargs="+", default=["test", "test_long"])
    p.add_argument("--long_set", default="test_long", help="set of the failure counts and the bootstrap")
    p.add_argument("--noise_set", default="test", help="the set the babble-noise sweep decoded")
    p.add_argument(
        "--snrs",
        nargs="*",
        type=float,
        default=list(rb.PAPER_SNRS_DB),
        help="SNRs (dB) of the noise sweep; none skips the noise table",
    )
    p.add_argument(
        "--frames_file",
        default="utt2num_frames",
        help="frame counts in each <ref_dir>/<set>/ (utt2num_frames or a video shape file)",
    )
    p.add_argument("--tta_methods", nargs=2, default=["usr2", "usr1"], metavar=("NEW", "BASELINE"))
    p.add_argument("--tta_metric", default="acc_av")
    p.add_argument(
        "--target_acc",
        type=float,
        default=None,
        help="time-to-accuracy target; default: the highest value every compared run reaches",
    )
    p.add_argument("--bootstrap_pairs", nargs="*", type=_pair, default=[("usr2", "usr1"), ("usr2", "sup")])
    p.add_argument("--bootstrap_tag", default="greedy")
    p.add_argument("--n_draws", type=int, default=1000)
    p.add_argument("--bucket_lo", type=int, default=50)
    p.add_argument("--bucket_hi", type=int, default=600)
    p.add_argument("--bucket_step", type=int, default=50)
    p.add_argument("--missing_hyp", choices=("error", "empty"), default="error")
    p.add_argument(
        "--step_cost_dirs",
        nargs="*",
        type=_named_dir,
        default=[],
        metavar="NAME=EXP_DIR",
        help="more exp dirs whose seconds per training step the report lists (e.g. pre-training)",
    )
    p.add_argument(
        "--gpu_step_seconds",
        nargs="*",
        type=_method_seconds,
        default=[],
        metavar="METHOD=SECONDS",
        help="seconds per training step of the time-to-accuracy methods measured on a GPU: the steps "
        "ratio times their ratio is reported as the GPU time-to-accuracy product",
    )
    p.add_argument("--gpu_step_source", default="", help="where the GPU figures were measured (said in the report)")
    return p


def config_from_args(args: argparse.Namespace) -> ReportConfig:
    return ReportConfig(
        manifest=Path(args.manifest),
        ref_dir=Path(args.ref_dir),
        out_dir=Path(args.out_dir),
        warmup_dir=Path(args.warmup_dir) if args.warmup_dir else None,
        decode_tags=args.decode_tags,
        sets=args.sets,
        long_set=args.long_set,
        noise_set=args.noise_set,
        snrs=args.snrs,
        frames_file=args.frames_file,
        tta_methods=tuple(args.tta_methods),
        tta_metric=args.tta_metric,
        target=args.target_acc,
        bootstrap_pairs=args.bootstrap_pairs,
        bootstrap_tag=args.bootstrap_tag,
        n_draws=args.n_draws,
        buckets=rb.make_buckets(args.bucket_lo, args.bucket_hi, args.bucket_step),
        missing_hyp=args.missing_hyp,
        step_cost_dirs=args.step_cost_dirs,
        gpu_step_seconds=dict(args.gpu_step_seconds),
        gpu_step_source=args.gpu_step_source,
    )


def main(cmd: Optional[List[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    args = get_parser().parse_args(cmd)
    try:
        written = write_report(config_from_args(args))
    except (ScoringInputError, ValueError) as e:
        print(f"usr2_compare_report: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for kind, path in written.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
