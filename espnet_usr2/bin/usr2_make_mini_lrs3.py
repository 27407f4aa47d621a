#!/usr/bin/env python3
"""Generate the embedded mini corpus: talking-face mp4s + transcripts in LRS3's layout.

Example::

    python -m espnet_usr2.bin.usr2_make_mini_lrs3 --out downloads/mini_lrs3 --seed 0 --nj 2

Writes ``<out>/{pretrain,trainval,test}/<speaker>/<clip>.{mp4,txt}`` exactly as LRS3,
plus ``<out>/test_long/`` (a few utterances longer than any labelled one, for the
length-robustness check; clip numbers from 90001) and ``<out>/corpus_info.json``.
Speech is espeak-ng text-to-speech with true word timings; the video is a face whose
mouth moves with the phonemes. Same seed and sizes, same corpus. A finished corpus
with the same settings is left untouched; ``--overwrite`` regenerates.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import time
from pathlib import Path
from typing import List, Optional

from espnet_usr2.prep.mini_lrs3 import CorpusConfig, write_corpus

_HELPS = {
    "seed": "random seed: same seed and sizes, same sentences, voices, timings and faces",
    "n_pretrain": "clips in pretrain/",
    "n_trainval": "clips in trainval/",
    "n_test": "clips in test/ (speakers unseen in pretrain/trainval)",
    "n_long": "clips in test_long/ (longer than any labelled clip)",
    "n_speakers": "speakers of pretrain/ and trainval/",
    "n_test_speakers": "speakers of test/ and test_long/",
    "min_words": "fewest words per labelled sentence (>= 3)",
    "max_words": "most words per labelled sentence",
    "long_min_words": "fewest words per test_long utterance (> max_words)",
    "long_max_words": "target upper bound for test_long (a final sentence may overshoot it)",
    "size": "square video frame side in pixels (even)",
    "crf": "H.264 constant rate factor (lower: better quality, bigger files)",
    "pretrain_long_share": "share of pretrain/ clips made of several sentences (longer than any labelled clip)",
    "pretrain_long_min_words": "fewest words of such a clip (> max_words)",
    "pretrain_long_max_words": "target upper bound of such a clip (a final sentence may overshoot it)",
}


def get_parser() -> argparse.ArgumentParser:
    """Command-line options: one per :class:`CorpusConfig` field, plus out/nj/overwrite."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="corpus root directory")
    parser.add_argument("--nj", type=int, default=1, help="worker processes")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing or unfinished corpus in --out (only its split dirs)",
    )
    parser.add_argument("--log_level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    group = parser.add_argument_group("corpus")
    for field in dataclasses.fields(CorpusConfig):
        group.add_argument(
            f"--{field.name}",
            type=type(field.default),
            default=field.default,
            help=f"{_HELPS[field.name]} (default: %(default)s)",
        )
    return parser


def _disk_usage(root: Path) -> int:
    """Bytes of all regular files under ``root``."""
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(cmd: Optional[List[str]] = None) -> int:
    """Generate the corpus and print a summary (clips, hours, time, size)."""
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = CorpusConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CorpusConfig)})
    try:
        cfg.check()
    except ValueError as err:
        raise SystemExit(f"error: {err}") from None
    root = Path(args.out)
    start = time.perf_counter()
    try:
        info = write_corpus(cfg, root, nj=args.nj, overwrite=args.overwrite)
    except FileExistsError as err:
        raise SystemExit(f"error: {err}") from None
    elapsed = time.perf_counter() - start
    for split, stats in info["splits"].items():
        print(
            f"{split:9s} {stats['clips']:5d} clips  {stats['hours'] * 60:6.2f} min  "
            f"{stats['min_s']:.2f}-{stats['max_s']:.2f} s"
        )
    total = sum(s["clips"] for s in info["splits"].values())
    print(
        f"{total} clips in {root}: generated in {info['generation_seconds']:.1f} s "
        f"with nj={info['nj']} (this call: {elapsed:.1f} s), "
        f"{_disk_usage(root) / 2**20:.1f} MiB on disk"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
