#!/usr/bin/env python3
"""Score a decode directory the ESPnet way, or collect RESULTS.md.

Score one test set x modality (writes ``<out_dir>/score_wer/`` and, with ``--cer``,
``<out_dir>/score_cer/``, each with ``ref.trn``, ``hyp.trn``, ``result.txt``)::

    python -m espnet_usr2.bin.usr2_score --ref_text data/test/text \\
        --hyp_text exp/<model>/decode_<tag>/test/audio/text --utt2spk data/test/utt2spk \\
        --out_dir exp/<model>/decode_<tag>/test/audio --cer

Collect every ``exp/<model>/<decoding dir>/<test_set>/<modality>/score_*/result.txt`` (any
decoding directory: ``decode_<config>_<model>``, or the name usr2.sh's ``--inference_tag`` gave)::

    python -m espnet_usr2.bin.usr2_score --results exp --out RESULTS.md

sclite is used when found (``$SCLITE``, ``PATH``, ``/usr/lib/sctk/bin``); otherwise the
built-in Python scorer writes the same report, with a warning (``--backend sclite`` makes a
missing sclite an error instead).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from espnet_usr2.scoring.results import write_results_md
from espnet_usr2.scoring.sclite import (
    FallbackUnsupportedError,
    ScliteFailedError,
    ScliteNotFoundError,
    ScoringInputError,
    score,
)


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    one = parser.add_argument_group("score one decode directory")
    one.add_argument("--ref_text", help="reference Kaldi text (uttid WORDS...)")
    one.add_argument("--hyp_text", help="hypothesis Kaldi text")
    one.add_argument("--utt2spk", help="utt2spk of the test set")
    one.add_argument("--out_dir", help="where score_wer/ (and score_cer/) are written")
    one.add_argument("--cer", action="store_true", help="also score characters (score_cer/)")
    one.add_argument(
        "--backend",
        choices=("auto", "sclite", "python"),
        default="auto",
        help="auto: sclite if found, else the Python scorer",
    )
    one.add_argument(
        "--missing_hyp",
        choices=("error", "empty"),
        default="error",
        help="references without a hypothesis: refuse, or score them as empty",
    )
    one.add_argument(
        "--extra_hyp",
        choices=("error", "ignore"),
        default="error",
        help="hypotheses without a reference: refuse, or drop them",
    )
    one.add_argument(
        "--utt_list",
        default=None,
        help="score only these utterances (first column), e.g. those that have the modality's "
        "streams in a set mixing audio-visual and single-stream utterances",
    )
    one.add_argument("--nlsyms_txt", default=None, help="non-linguistic symbols to remove (one per line)")
    one.add_argument("--cleaner", default=None, help="ESPnet text cleaner for the reference (as asr.sh)")
    many = parser.add_argument_group("collect RESULTS.md")
    many.add_argument("--results", metavar="EXP_DIR", help="experiment directory to collect")
    many.add_argument("--out", default="RESULTS.md", help="Markdown file to write")
    return parser


def _score_one(args: argparse.Namespace) -> None:
    missing = [f"--{k}" for k in ("ref_text", "hyp_text", "utt2spk", "out_dir") if getattr(args, k) is None]
    if missing:
        raise SystemExit(f"usr2_score: scoring needs {', '.join(missing)} (or use --results)")
    metrics = ("wer", "cer") if args.cer else ("wer",)
    outcomes = score(
        args.ref_text,
        args.hyp_text,
        args.utt2spk,
        args.out_dir,
        metrics=metrics,
        backend=args.backend,
        missing_hyp=args.missing_hyp,
        extra_hyp=args.extra_hyp,
        non_linguistic_symbols=args.nlsyms_txt,
        cleaner=args.cleaner,
        utt_list=args.utt_list,
    )
    for metric, outcome in outcomes.items():
        for note in outcome.notes:
            logging.warning("%s: %s", metric, note)
        print(f"{metric.upper()} ({outcome.backend}) -> {outcome.result_txt}")
        print(outcome.summary.line)


def main(cmd: Optional[List[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    args = get_parser().parse_args(cmd)
    try:
        if args.results is not None:
            out, problems = write_results_md(args.results, args.out)
            print(f"wrote {out}" + (f" ({len(problems)} result files skipped)" if problems else ""))
        else:
            _score_one(args)
    except (
        ScoringInputError,
        ScliteNotFoundError,
        ScliteFailedError,
        FallbackUnsupportedError,
        FileNotFoundError,
    ) as e:
        # input problems get one clear line, not a traceback
        print(f"usr2_score: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
