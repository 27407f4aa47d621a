#!/usr/bin/env python3
"""Decode a test set under babble noise at several SNRs, for the robustness report::

    python -m espnet_usr2.bin.usr2_noise_sweep --data_dir data/test --work_dir exp/m/noisy \\
        --train_config exp/m/config.yaml --model_file exp/m/valid.acc_av.ave.pth \\
        --snrs 10 5 0 -5 --config conf/decode_beam40.yaml

See :mod:`espnet_usr2.inference.noise_sweep` for the layout it writes.
"""

from __future__ import annotations

import argparse
import logging
from typing import List, Optional

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.decode.hyps import DecodeOptions
from espnet_usr2.inference.noise_sweep import noise_hyp_specs, noise_source, run_noise_sweep
from espnet_usr2.inference.speech2text import USR2Speech2Text
from espnet_usr2.utils.modalities import canonical_modalities


def get_parser() -> argparse.ArgumentParser:
    from espnet2.utils import config_argparse

    parser = config_argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="test data dir with wav.scp (and video.scp for AV)")
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", default=None)
    parser.add_argument("--model_role", default="student", choices=("student", "teacher"))
    parser.add_argument("--modalities", nargs="+", default=["a", "av"])
    parser.add_argument("--snrs", nargs="+", default=[str(s) for s in rb.PAPER_SNRS_DB], help="dB values, or 'clean'")
    parser.add_argument("--noise_wav", default=None, help="babble recording; default: babble from the corpus")
    parser.add_argument("--n_talkers", type=int, default=30)
    parser.add_argument("--noise_seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--ngpu", type=int, default=0)
    for name, typ, default in (
        ("method", str, "beam"),
        ("beam_impl", str, "fast"),
        ("beam_size", int, 40),
        ("ctc_weight", float, 0.1),
        ("penalty", float, 0.0),
        ("maxlenratio", float, 0.0),
        ("minlenratio", float, 0.0),
        ("nbest", int, 1),
    ):
        parser.add_argument(f"--{name}", type=typ, default=default)
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")
    args = get_parser().parse_args(cmd)
    opts = DecodeOptions.from_mapping(vars(args))
    s2t = USR2Speech2Text(
        args.train_config,
        args.model_file,
        device="cuda" if args.ngpu > 0 else "cpu",
        modalities=canonical_modalities(args.modalities),
        opts=opts,
        model_role=args.model_role,
    )
    hyps = run_noise_sweep(
        args.data_dir,
        args.work_dir,
        s2t,
        [rb.parse_snr(s) for s in args.snrs],
        noise_source(args.data_dir, args.noise_wav, args.n_talkers, args.noise_seed),
        batch_size=args.batch_size,
    )
    print("arguments for espnet_usr2.bin.usr2_robustness_report:")
    print(" ".join(f"--noise_hyp {spec}" for spec in noise_hyp_specs(hyps)))


if __name__ == "__main__":
    main()
