#!/usr/bin/env python3
"""Robustness tables and plots: WER by input length and WER vs babble-noise SNR.

Hypotheses are Kaldi ``text`` files, one per condition::

    python -m espnet_usr2.bin.usr2_robustness_report \\
        --ref_text data/vox2_sample/text --num_frames data/vox2_sample/utt2num_frames \\
        --length_hyp video/greedy=exp/m/decode_greedy/vox2_sample/video/text \\
        --length_hyp video/beam30=exp/m/decode_beam30/vox2_sample/video/text \\
        --noise_hyp audio@clean=exp/m/decode_beam30/test/audio/text \\
        --noise_hyp audio@-5=exp/m/decode_beam30/test_babble_m5/audio/text \\
        --noise_hyp audiovisual@-5=exp/m/decode_beam30/test_babble_m5/audiovisual/text \\
        --out_dir exp/m/robustness

``--length_hyp NAME=PATH`` adds a line to the WER-by-length analysis (buckets of 50 frames,
50-600); ``--noise_hyp NAME@SNR=PATH`` adds a point to the WER-vs-SNR analysis (SNR in dB,
or ``clean``), reported for all samples and, with ``--num_frames``, for those longer than
``--min_frames`` (100).  Writes ``robustness.md``, ``robustness.json``,
``wer_vs_length.png`` and ``wer_vs_snr.png`` to ``--out_dir``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.scoring.sclite import ScoringInputError, read_kaldi_text


def _split_spec(spec: str, with_snr: bool) -> Tuple[str, Optional[float], str]:
    """``NAME=PATH`` or ``NAME@SNR=PATH`` -> (name, snr or None, path)."""
    if "=" not in spec:
        raise ScoringInputError(f"{spec!r}: expected NAME{'@SNR' if with_snr else ''}=PATH")
    key, path = spec.split("=", 1)
    if not with_snr:
        return key, None, path
    if "@" not in key:
        raise ScoringInputError(f"{spec!r}: expected NAME@SNR=PATH, e.g. audio@-5=exp/.../text")
    name, snr = key.rsplit("@", 1)
    try:
        return name, rb.parse_snr(snr), path
    except ValueError:
        raise ScoringInputError(f"{spec!r}: SNR {snr!r} is neither a number nor 'clean'") from None


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref_text", required=True, help="reference Kaldi text")
    parser.add_argument("--num_frames", help="utt2num_frames, or a shape file (first number per line)")
    parser.add_argument(
        "--noise_ref_text",
        default=None,
        help="reference of the noise analysis when it is another test set "
        "(e.g. LRS3 test for noise, a VoxCeleb2 sample for length); default --ref_text",
    )
    parser.add_argument("--noise_num_frames", default=None, help="frame counts for --noise_ref_text")
    parser.add_argument(
        "--samples_per_frame", type=int, default=None, help="set (e.g. 640) when --num_frames counts audio samples"
    )
    parser.add_argument("--length_hyp", action="append", default=[], metavar="NAME=PATH")
    parser.add_argument("--noise_hyp", action="append", default=[], metavar="NAME@SNR=PATH")
    parser.add_argument("--bucket_lo", type=int, default=50)
    parser.add_argument("--bucket_hi", type=int, default=600)
    parser.add_argument("--bucket_step", type=int, default=50)
    parser.add_argument(
        "--min_frames",
        type=int,
        default=rb.DEFAULT_MIN_FRAMES,
        help="the noise table's second subset: utterances longer than this",
    )
    parser.add_argument("--missing_hyp", choices=("error", "empty"), default="error")
    parser.add_argument("--extra_hyp", choices=("error", "ignore"), default="error")
    parser.add_argument("--out_dir", required=True)
    return parser


def _cell_json(cell: rb.WerCell) -> Dict[str, object]:
    c = cell.counts
    return {
        "wer": None if math.isnan(cell.wer) else round(cell.wer, 4),
        "utterances": cell.n_utts,
        "ref_words": c.n_ref,
        "sub": c.sub,
        "del": c.dele,
        "ins": c.ins,
    }


def build_report(args: argparse.Namespace) -> Dict[str, Path]:
    """Compute the requested analyses and write Markdown, JSON and PNGs; returns the paths."""
    if not args.length_hyp and not args.noise_hyp:
        raise ScoringInputError("nothing to report: give --length_hyp and/or --noise_hyp")
    if args.length_hyp and not args.num_frames:
        raise ScoringInputError("--length_hyp needs --num_frames")
    ref = read_kaldi_text(args.ref_text, "reference text")
    frames = rb.read_num_frames(args.num_frames, args.samples_per_frame) if args.num_frames else None
    noise_ref, noise_frames = ref, frames
    if args.noise_ref_text:
        noise_ref = read_kaldi_text(args.noise_ref_text, "noise reference text")
        noise_frames = None
    if args.noise_num_frames:
        noise_frames = rb.read_num_frames(args.noise_num_frames, args.samples_per_frame)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    md = ["# Robustness", ""]
    data: Dict[str, object] = {}
    written: Dict[str, Path] = {}
    notes: List[str] = []

    if args.length_hyp:
        hyps = {}
        for spec in args.length_hyp:
            name, _, path = _split_spec(spec, with_snr=False)
            hyps[name] = read_kaldi_text(path, f"hypothesis text of {name!r}")
        buckets = rb.make_buckets(args.bucket_lo, args.bucket_hi, args.bucket_step)
        table = rb.wer_by_length(ref, hyps, frames, buckets, args.missing_hyp, args.extra_hyp)
        notes += table.notes
        written["wer_vs_length"] = rb.plot_wer_vs_length(table, out_dir / "wer_vs_length.png")
        md += [
            "## WER (%) by input length",
            "",
            f"Reference: `{args.ref_text}`; lengths: `{args.num_frames}`",
            "",
            rb.length_markdown(table),
            "",
            "![WER vs input length](wer_vs_length.png)",
            "",
        ]
        data["length"] = {
            c: {b.label: _cell_json(table.cells[(c, b.label)]) for b in table.buckets} for c in table.conditions
        }

    if args.noise_hyp:
        hyps_noise = {}
        for spec in args.noise_hyp:
            name, snr, path = _split_spec(spec, with_snr=True)
            hyps_noise[(name, snr)] = read_kaldi_text(path, f"hypothesis text of {name!r} at {rb.snr_label(snr)}")
        ntable = rb.wer_by_snr(noise_ref, hyps_noise, noise_frames, args.min_frames, args.missing_hyp, args.extra_hyp)
        notes += ntable.notes
        written["wer_vs_snr"] = rb.plot_wer_vs_snr(ntable, out_dir / "wer_vs_snr.png")
        md += [
            "## WER (%) with babble noise",
            "",
            f"Reference: `{args.noise_ref_text or args.ref_text}`",
            "",
            rb.noise_markdown(ntable),
            "![WER vs SNR](wer_vs_snr.png)",
            "",
        ]
        data["noise"] = {
            s: {
                c: {
                    rb.snr_label(snr): _cell_json(ntable.cells[(s, c, snr)])
                    for snr in ntable.snrs
                    if (s, c, snr) in ntable.cells
                }
                for c in ntable.conditions
            }
            for s in ntable.subsets
        }

    if notes:
        md += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
        for n in notes:
            logging.warning("%s", n)
    written["markdown"] = out_dir / "robustness.md"
    written["markdown"].write_text("\n".join(md), encoding="utf-8")
    written["json"] = out_dir / "robustness.json"
    written["json"].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return written


def main(cmd: Optional[List[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    args = get_parser().parse_args(cmd)
    try:
        written = build_report(args)
    except (ScoringInputError, ValueError) as e:
        print(f"usr2_robustness_report: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for kind, path in written.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
