#!/usr/bin/env python3
"""Decode a data directory with a USR 2.0 model for any of A, V and AV in one call.

    python -m espnet_usr2.bin.usr2_inference \\
        --train_config exp/usr2/config.yaml --model_file exp/usr2/valid.acc_av.ave.pth \\
        --data_path_and_name_and_type dump/test/wav.scp,speech,sound \\
        --data_path_and_name_and_type dump/test/video.scp,video,roi_video \\
        --modalities v a av --config conf/decode_beam40.yaml --output_dir exp/usr2/decode/test

Writes ``<output_dir>/{video,audio,audiovisual}/`` in ESPnet's decode layout (1-best
``text``, ``token``, ``token_int``, ``score`` and ``<n>best_recog/``). With
``--allow_single_stream true`` a set may mix audio-visual, video-only (not in wav.scp) and
audio-only (not in video.scp) utterances; each is decoded in the modalities it has. Options may also come
from a YAML file (``--config``), as in ESPnet's ``asr_inference``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from espnet2.utils import config_argparse
from espnet2.utils.types import str2bool, str2triple_str, str_or_none

from espnet_usr2.decode.hyps import BEAM_IMPLS, METHODS, DecodeOptions
from espnet_usr2.inference.inference import DataInputError, inference
from espnet_usr2.inference.speech2text import MODEL_ROLES
from espnet_usr2.model.incremental import UnsupportedDecoderError


def get_parser() -> config_argparse.ArgumentParser:
    parser = config_argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log_level", default="INFO", choices=("ERROR", "WARNING", "INFO", "DEBUG", "NOTSET"))
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--ngpu", type=int, default=0, help="0: CPU; 1: the first CUDA device")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dtype", default="float32", choices=("float16", "float32", "float64"))
    parser.add_argument("--num_workers", type=int, default=1, help="data loader workers")

    group = parser.add_argument_group("Input data")
    group.add_argument(
        "--data_path_and_name_and_type",
        type=str2triple_str,
        required=True,
        action="append",
        help="PATH,NAME,TYPE: e.g. wav.scp,speech,sound and video.scp,video,roi_video",
    )
    group.add_argument("--key_file", type=str_or_none, help="decode only these utterances (first column)")
    group.add_argument("--allow_variable_data_keys", type=str2bool, default=False)
    group.add_argument(
        "--allow_single_stream",
        type=str2bool,
        default=False,
        help="utterances missing from the speech or the video file are decoded in the "
        "modalities their one stream allows (V for video-only, A for audio-only); "
        "the log gives the count per modality",
    )
    group.add_argument(
        "--batch_size",
        type=int,
        default=1,
        help="utterances per batch; the fast beam search and greedy searches decode a "
        "batch together (padding may change encoder outputs at the edges slightly)",
    )

    group = parser.add_argument_group("Model")
    group.add_argument("--train_config", required=True, help="the training config.yaml")
    group.add_argument("--model_file", help="the model .pth (random weights if omitted)")
    group.add_argument(
        "--model_role", default="student", choices=MODEL_ROLES, help="decode the trained student or its EMA teacher"
    )
    group.add_argument(
        "--modalities",
        nargs="+",
        default=["av"],
        help="any of v a av (or video audio audiovisual); one encoder pass for all",
    )

    group = parser.add_argument_group("Search")
    group.add_argument("--method", default="beam", choices=METHODS)
    group.add_argument(
        "--beam_impl",
        default="fast",
        choices=BEAM_IMPLS,
        help="fast: batched over utterances and hypotheses; espnet: ESPnet's BatchBeamSearch "
        "(the reference; same 1-best)",
    )
    group.add_argument("--beam_size", type=int, default=40)
    group.add_argument("--ctc_weight", type=float, default=0.1)
    group.add_argument("--penalty", type=float, default=0.0, help="length bonus per output token")
    group.add_argument(
        "--maxlenratio",
        type=float,
        default=1.0,
        help="0: up to one token per frame with end detection; <0: -maxlenratio tokens; "
        ">0: maxlenratio x frames, no end detection (1.0: the released default)",
    )
    group.add_argument("--minlenratio", type=float, default=0.0)
    group.add_argument("--nbest", type=int, default=1)

    group = parser.add_argument_group("Language model (shallow fusion, beam search only)")
    group.add_argument(
        "--lm_train_config",
        type=str_or_none,
        default=None,
        help="config.yaml of an ESPnet LM (espnet2.bin.lm_train) with the model's token list",
    )
    group.add_argument("--lm_file", type=str_or_none, default=None, help="its .pth (random weights if omitted)")
    group.add_argument(
        "--lm_weight",
        type=float,
        default=0.0,
        help="weight of the LM log-probability; 0: no LM (greedy methods ignore it)",
    )

    group = parser.add_argument_group("Text converter")
    group.add_argument(
        "--token_type",
        type=str_or_none,
        default=None,
        choices=[None, "bpe", "char", "word"],
        help="default: the training config's",
    )
    group.add_argument("--bpemodel", type=str_or_none, default=None, help="default: the training config's")
    group.add_argument("--log_interval", type=int, default=100, help="report progress every N utterances")
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    parser = get_parser()
    args = parser.parse_args(cmd)
    logging.basicConfig(level=args.log_level, format="%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s")
    try:
        opts = DecodeOptions.from_mapping(vars(args))
        out_dirs = inference(
            output_dir=args.output_dir,
            data_path_and_name_and_type=args.data_path_and_name_and_type,
            train_config=args.train_config,
            model_file=args.model_file,
            modalities=args.modalities,
            opts=opts,
            key_file=args.key_file,
            model_role=args.model_role,
            batch_size=args.batch_size,
            ngpu=args.ngpu,
            seed=args.seed,
            dtype=args.dtype,
            num_workers=args.num_workers,
            token_type=args.token_type,
            bpemodel=args.bpemodel,
            allow_variable_data_keys=args.allow_variable_data_keys,
            log_interval=args.log_interval,
            lm_train_config=args.lm_train_config,
            lm_file=args.lm_file,
            allow_single_stream=args.allow_single_stream,
        )
    except (DataInputError, UnsupportedDecoderError, ValueError, FileNotFoundError) as e:
        # bad input: one clear line instead of a traceback
        print(f"usr2_inference: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for m, d in out_dirs.items():
        print(f"{m}: {d}")


if __name__ == "__main__":
    main()
