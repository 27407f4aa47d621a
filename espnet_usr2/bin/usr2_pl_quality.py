#!/usr/bin/env python3
"""Score a teacher's pseudo-labels against transcripts that training never reads.

For clips with transcripts (the mini corpus's unlabelled set; any held-out set), the model
acting as the EMA teacher makes each kind of pseudo-label -- greedy collapsed CTC, CTC-driven
teacher forcing, autoregressive -- and each is scored per length bucket (WER, repetition
loops, omissions, the share the confidence filters keep); see
:mod:`espnet_usr2.analysis.pseudo_labels`::

    python -m espnet_usr2.bin.usr2_pl_quality --train_config exp/warmup/config.yaml \\
        --model_file exp/warmup/valid.loss.best.pth --data_dir dump/pretrain --max_utts 200 \\
        --batch_norm batch running --ar_limit_over utterance batch --out_dir exp/warmup/pl_quality

One table per teacher setting (every combination of ``--batch_norm``, ``--view`` and
``--ar_limit_over``). Clips are taken in order of length and batched ``--batch_size`` at a
time, as the length-sorted unlabelled batches of training are (batch statistics and the
padded-batch AR limit depend on the batch). Writes ``results.md``, ``results.json``,
``wer_vs_length.png`` to ``--out_dir``.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import random
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import torch

from espnet_usr2.analysis.pseudo_labels import (
    BATCH_NORM_MODES,
    VIEWS,
    TeacherSetting,
    UtterancePL,
    batch_pseudo_labels,
    score,
    teacher_network,
    write_report,
)
from espnet_usr2.inference.inference import build_loader, read_keys
from espnet_usr2.inference.speech2text import USR2Speech2Text
from espnet_usr2.scoring.sclite import read_kaldi_text
from espnet_usr2.semi.ar_pseudo_labels import LIMITS_OVER

log = logging.getLogger("usr2_pl_quality")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_config", required=True, help="the model's training config.yaml")
    parser.add_argument("--model_file", required=True, help="the model file (.pth)")
    parser.add_argument(
        "--model_role",
        default="student",
        choices=["student", "teacher"],
        help="which network acts as the teacher (a semi-supervised model holds both)",
    )
    parser.add_argument(
        "--data_dir",
        required=True,
        help="directory with wav.scp, video.scp and text (utt2num_frames orders the clips by length)",
    )
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--max_utts", type=int, default=0, help="score a random subset of this many clips (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and of an augmented view")
    parser.add_argument("--batch_size", type=int, default=8, help="clips per teacher batch")
    parser.add_argument("--batch_norm", nargs="+", default=["batch"], choices=BATCH_NORM_MODES)
    parser.add_argument("--view", nargs="+", default=["clean"], choices=VIEWS)
    parser.add_argument("--ar_limit_over", nargs="+", default=["utterance"], choices=LIMITS_OVER)
    parser.add_argument("--ar_max_len_ratio", type=float, default=0.2, help="AR steps per frame (USR: T // 5)")
    parser.add_argument("--threshold", type=float, default=0.8, help="confidence threshold tau")
    parser.add_argument("--bucket_frames", type=int, default=50, help="width of the length buckets")
    parser.add_argument("--log_level", default="INFO")
    return parser


def ordered_keys(data_dir: Path, max_utts: int, seed: int) -> List[str]:
    """Clips with audio, video and a transcript, a random subset if asked, shortest first."""
    have = set(read_keys(data_dir / "wav.scp")) & set(read_keys(data_dir / "video.scp"))
    keys = sorted(k for k in read_kaldi_text(data_dir / "text") if k in have)
    if not keys:
        raise ValueError(f"{data_dir}: no clip has audio, video and a transcript")
    if 0 < max_utts < len(keys):
        keys = sorted(random.Random(seed).sample(keys, max_utts))
    frames_file = data_dir / "utt2num_frames"
    if frames_file.is_file():
        frames = {k: int(v.split()[0]) for k, v in read_kaldi_text(frames_file).items()}
        keys.sort(key=lambda k: (frames.get(k, 0), k))
    return keys


def write_ordered_lists(data_dir: Path, keys: Sequence[str], out: Path) -> List[tuple]:
    """wav.scp and video.scp holding ``keys`` in this order (ESPnet's streaming dataset reads the
    files in their own order), as a data spec."""
    out.mkdir(parents=True, exist_ok=True)
    spec = []
    for name, kind, dtype in (("wav.scp", "speech", "sound"), ("video.scp", "video", "roi_video")):
        entries = dict(line.split(maxsplit=1) for line in (data_dir / name).read_text().splitlines() if line.strip())
        (out / name).write_text("".join(f"{k} {entries[k]}\n" for k in keys))
        spec.append((str(out / name), kind, dtype))
    return spec


def pseudo_labels(
    s2t: USR2Speech2Text, data: List[tuple], setting: TeacherSetting, batch_size: int, seed: int
) -> List[UtterancePL]:
    """Every clip's pseudo-labels of every kind under one teacher setting."""
    torch.manual_seed(seed)  # the augmented view's crops
    teacher = teacher_network(s2t.net, setting.batch_norm)
    out: List[UtterancePL] = []
    for keys, batch in build_loader(s2t, data, None, batch_size, "float32", 0, False, 0):
        tokens, keep, frames = batch_pseudo_labels(teacher, batch, setting, s2t.sos, s2t.eos)
        for i, key in enumerate(keys):
            out.append(
                UtterancePL(
                    key,
                    int(frames[i]),
                    {k: s2t.text_of(v[i]) for k, v in tokens.items()},
                    {k: v[i] for k, v in keep.items()},
                )
            )
    return out


def main(cmd: Optional[Sequence[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s) %(levelname)s: %(message)s")
    data_dir, out_dir = Path(args.data_dir), Path(args.out_dir)
    try:
        keys = ordered_keys(data_dir, args.max_utts, args.seed)
        refs = read_kaldi_text(data_dir / "text")
    except (OSError, ValueError) as e:
        sys.exit(f"usr2_pl_quality: {e}")
    data = write_ordered_lists(data_dir, keys, out_dir / "lists")
    s2t = USR2Speech2Text(args.train_config, args.model_file, model_role=args.model_role)
    results: Dict[str, dict] = {}
    for bn, view, limit in itertools.product(args.batch_norm, args.view, args.ar_limit_over):
        setting = TeacherSetting(bn, view, limit, args.ar_max_len_ratio, args.threshold)
        log.info(f"{setting.name}: {len(keys)} clips, batches of {args.batch_size}")
        results[setting.name] = score(
            pseudo_labels(s2t, data, setting, args.batch_size, args.seed), refs, args.bucket_frames
        )
    header = (
        f"Pseudo-labels of {args.model_file} ({args.model_role}) on {len(keys)} clips of {data_dir}, "
        f"batches of {args.batch_size} in length order, tau {args.threshold}, AR limit "
        f"{args.ar_max_len_ratio} x T"
    )
    for path in write_report(results, out_dir, header):
        print(path)


if __name__ == "__main__":
    main()
