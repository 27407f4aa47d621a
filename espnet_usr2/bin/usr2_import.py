#!/usr/bin/env python3
"""Convert a released USR 2.0 / USR checkpoint into an ESPnet model directory of this task.

    # a fine-tuned USR 2.0 release -> model.pth, config.yaml, tokens.txt, bpe.model, decode_beam40.yaml
    python -m espnet_usr2.bin.usr2_import --checkpoint base_lrs3_low.pth \\
        --units unigram1000_units.txt --out_dir exp/usr2_release_base
    python -m espnet_usr2.bin.usr2_inference --train_config exp/usr2_release_base/config.yaml \\
        --model_file exp/usr2_release_base/model.pth --config exp/usr2_release_base/decode_beam40.yaml ...

    # a self-supervised USR encoder -> encoder.pth for --init_param (+ the released vocabulary)
    python -m espnet_usr2.bin.usr2_import --encoder_only --checkpoint usr_base_lrs3_ssl.pth \\
        --units unigram1000_units.txt --out_dir exp/usr_ssl_base

    # this project's own self-supervised pre-training (model: usr2_pretrain) -> encoder.pth
    python -m espnet_usr2.bin.usr2_import --encoder_only --checkpoint exp/pretrain/valid.loss.ave.pth \\
        --config conf/train_usr2_base.yaml --out_dir exp/pretrain/encoder

The model size (Base, Base+, Large, Huge) is read from the tensor shapes; the training
config is the paper config of that size unless ``--config`` names another. Every tensor of
the file is placed or explicitly ignored (USR's EMA teacher copy and unlabelled-loss heads,
listed in the output); anything else is an error and nothing is written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from espnet_usr2.model.release_checkpoint import STUDENT, TEACHER, ReleaseCheckpointError
from espnet_usr2.tasks.release_import import import_release


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="the released .pth state dict, or a training checkpoint holding 'state_dict'",
    )
    parser.add_argument("--out_dir", required=True, help="the model directory to write (must be new or empty)")
    parser.add_argument(
        "--units",
        help="the release's unigram1000_units.txt (needed for a full model; with "
        "--encoder_only it adds tokens.txt and bpe.model)",
    )
    parser.add_argument(
        "--encoder_only",
        action="store_true",
        help="write out_dir/encoder.pth (frontends, projections, encoder blocks; no final norm) "
        "for --init_param, e.g. from a self-supervised USR checkpoint",
    )
    parser.add_argument(
        "--config",
        help="training config to build on (default: the paper config of the "
        "detected size, egs2/TEMPLATE/usr2/conf/train_usr2_<size>.yaml); "
        "needed for a checkpoint of this project (pre-training)",
    )
    parser.add_argument(
        "--source",
        choices=(STUDENT, TEACHER),
        default=STUDENT,
        help="which network of a USR training wrapper to import: the student ('backbone', "
        "default) or its EMA teacher ('target_backbone')",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out_dir")
    parser.add_argument("--log_level", default="WARNING", choices=("ERROR", "WARNING", "INFO", "DEBUG"))
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    try:
        report = import_release(
            args.checkpoint,
            args.out_dir,
            units=args.units,
            encoder_only=args.encoder_only,
            config=args.config,
            source=args.source,
            overwrite=args.overwrite,
        )
    except (ReleaseCheckpointError, ValueError, OSError) as e:
        print(f"usr2_import: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for line in report.lines():
        print(line)


if __name__ == "__main__":
    main()
