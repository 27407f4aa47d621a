#!/usr/bin/env python3
"""Shape files for training, from the lists data preparation wrote (usr2.sh stage 10).

Takes exactly the options of ``usr2_train --collect_stats true`` (the config, the token
options, ``--{train,valid}_data_path_and_name_and_type``, ``--{train,valid}_shape_file``,
``--output_dir``) and writes the same ``<output_dir>/{train,valid}/{*_shape,batch_keys,
stats_keys}`` and ``config.yaml`` without building the model or decoding a clip: frame
counts from ``utt2num_frames``, token counts from the task's own preprocessor
(:mod:`espnet_usr2.prep.shape_files`). A million clips take about a minute.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import List, Optional

from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

from espnet_usr2.prep.shape_files import DataSource, TokenCounter, write_shape_files
from espnet_usr2.tasks.usr2 import USR2Task


def get_parser():
    return USR2Task.get_parser()


def _token_counter(preprocessor) -> TokenCounter:
    # The preprocessor's own text step (cleaner, tokenizer, token ids), called without its
    # __call__, whose run-time type checks cost 8x the tokenisation (0.24 vs 0.03 ms a
    # transcript: 4 minutes of a million); a transcript alone has no speech to align.
    def count(uid: str, text: str) -> int:
        return len(preprocessor._text_process({preprocessor.text_name: text})[preprocessor.text_name])

    return count


def main(cmd: Optional[List[str]] = None) -> None:
    args = get_parser().parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    preprocessor = USR2Task.build_preprocess_fn(args, train=False)
    if preprocessor is None:
        sys.exit("usr2_shape_files: --use_preprocessor false: speech and text shapes follow the preprocessor")
    count_tokens = _token_counter(preprocessor) if args.token_list is not None else None
    output_dir = Path(args.output_dir)
    for mode in ("train", "valid"):
        sources = [DataSource.of(t) for t in getattr(args, f"{mode}_data_path_and_name_and_type")]
        shape_files = getattr(args, f"{mode}_shape_file")
        if not shape_files:
            sys.exit(f"usr2_shape_files: give --{mode}_shape_file (its first column orders the utterances)")
        write_shape_files(
            sources, Path(shape_files[0]), output_dir / mode, preprocessor.samples_per_frame, count_tokens
        )
    # what produced the shapes, as usr2_train --collect_stats leaves it
    with (output_dir / "config.yaml").open("w", encoding="utf-8") as f:
        yaml_no_alias_safe_dump(vars(args), f, indent=4, sort_keys=False)


if __name__ == "__main__":
    main()
