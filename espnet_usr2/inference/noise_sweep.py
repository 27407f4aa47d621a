"""Decoding under babble noise for the robustness report (paper Sec. 5.2, Table 1).

For each SNR a noisy copy of the test set is made with :mod:`espnet_usr2.decode.robustness`
(babble from the user's noise file, or synthesised from other utterances of the corpus),
then A and AV are decoded on it with one loaded model. The result is one hypothesis text
per (modality, SNR) and the ``--noise_hyp NAME@SNR=PATH`` arguments of
``espnet_usr2.bin.usr2_robustness_report``::

    python -m espnet_usr2.decode.noise_sweep --data_dir data/test --work_dir exp/m/noisy \\
        --train_config exp/m/config.yaml --model_file exp/m/valid.acc_av.ave.pth \\
        --snrs 10 5 0 -5 --config conf/decode_beam40.yaml

Layout: ``<work_dir>/data/snr<label>/`` (noisy ``wav.scp`` + the clean ``video.scp``,
``text``, ``utt2spk``) and ``<work_dir>/decode/snr<label>/<audio|audiovisual>/text``;
``label`` is the SNR with ``m`` for a minus sign (``snrm5``), ``clean`` without noise.
"""
from __future__ import annotations

import argparse
import logging
import math
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from espnet_usr2.decode import robustness as rb
from espnet_usr2.decode.hyps import DecodeOptions
from espnet_usr2.decode.inference import inference
from espnet_usr2.decode.speech2text import USR2Speech2Text
from espnet_usr2.utils.modalities import AUDIO, AUDIOVISUAL, LONG_NAMES, canonical_modalities

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
NOISE_MODALITIES = (AUDIO, AUDIOVISUAL)  # video-only decoding does not hear the noise
COPIED_FILES = ("video.scp", "text", "utt2spk", "utt2num_frames")


def noise_source(data_dir: PathLike, noise_wav: Optional[PathLike], n_talkers: int, seed: int) -> rb.NoiseSource:
    """The user's noise file, else babble from the other utterances of ``data_dir/wav.scp``."""
    if noise_wav is not None:
        return rb.FileNoise(noise_wav, seed=seed)
    return rb.CorpusBabble(rb.read_wav_scp(Path(data_dir) / "wav.scp"), n_talkers=n_talkers, seed=seed)


def make_noisy_data_dirs(data_dir: PathLike, out_root: PathLike, snrs: Sequence[float], source: rb.NoiseSource
                         ) -> Dict[float, Path]:
    """One data directory per SNR (the clean one for ``inf``); returns ``{snr: data_dir}``."""
    data_dir = Path(data_dir)
    dirs = {}
    for snr in snrs:
        if math.isinf(snr):
            dirs[snr] = data_dir
            continue
        out = Path(out_root) / rb.condition_name(snr)
        rb.write_noisy_wav_scp(data_dir / "wav.scp", out, snr, source)
        for name in COPIED_FILES:
            if (data_dir / name).is_file():
                shutil.copyfile(data_dir / name, out / name)
        dirs[snr] = out
    return dirs


def data_spec(data_dir: Path, modalities: Sequence[str]) -> List[Tuple[str, str, str]]:
    """``--data_path_and_name_and_type`` entries of a noisy data directory."""
    spec = [(str(data_dir / "wav.scp"), "speech", "sound")]
    if AUDIOVISUAL in modalities:
        spec.append((str(data_dir / "video.scp"), "video", "roi_video"))
    return spec


def noise_hyp_specs(hyp_texts: Dict[Tuple[str, float], Path]) -> List[str]:
    """``NAME@SNR=PATH`` arguments for ``usr2_robustness_report --noise_hyp``."""
    return [f"{LONG_NAMES[m]}@{rb.snr_label(snr)}={path}" for (m, snr), path in hyp_texts.items()]


def run_noise_sweep(data_dir: PathLike, work_dir: PathLike, s2t: USR2Speech2Text, snrs: Sequence[float],
                    source: rb.NoiseSource, batch_size: int = 1, log_interval: int = 100
                    ) -> Dict[Tuple[str, float], Path]:
    """Make the noisy copies and decode A / AV on each; returns ``{(modality, snr): hyp text}``."""
    modalities = list(s2t.modalities)
    if any(m not in NOISE_MODALITIES for m in modalities):
        raise ValueError(f"the noise sweep decodes {[LONG_NAMES[m] for m in NOISE_MODALITIES]}; "
                         f"the decoder was set up for {list(s2t.modalities)}")
    work_dir = Path(work_dir)
    dirs = make_noisy_data_dirs(data_dir, work_dir / "data", snrs, source)
    hyps: Dict[Tuple[str, float], Path] = {}
    for snr, noisy_dir in dirs.items():
        log.info("decoding %s at SNR %s dB", [LONG_NAMES[m] for m in modalities], rb.snr_label(snr))
        out = inference(work_dir / "decode" / rb.condition_name(snr), data_spec(noisy_dir, modalities),
                        train_config=None, model_file=None, modalities=modalities, opts=s2t.opts,
                        batch_size=batch_size, num_workers=0, log_interval=log_interval, s2t=s2t)
        for m, d in out.items():
            hyps[(m, snr)] = d / "text"
    return hyps


def get_parser() -> argparse.ArgumentParser:
    from espnet2.utils import config_argparse

    parser = config_argparse.ArgumentParser(description=__doc__,
                                            formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True, help="test data dir with wav.scp (and video.scp for AV)")
    parser.add_argument("--work_dir", required=True)
    parser.add_argument("--train_config", required=True)
    parser.add_argument("--model_file", default=None)
    parser.add_argument("--model_role", default="student", choices=("student", "teacher"))
    parser.add_argument("--modalities", nargs="+", default=["a", "av"])
    parser.add_argument("--snrs", nargs="+", default=[str(s) for s in rb.PAPER_SNRS_DB],
                        help="dB values, or 'clean'")
    parser.add_argument("--noise_wav", default=None, help="babble recording; default: babble from the corpus")
    parser.add_argument("--n_talkers", type=int, default=30)
    parser.add_argument("--noise_seed", type=int, default=0)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--ngpu", type=int, default=0)
    for name, typ, default in (("method", str, "beam"), ("beam_impl", str, "fast"), ("beam_size", int, 40),
                               ("ctc_weight", float, 0.1), ("penalty", float, 0.0), ("maxlenratio", float, 0.0),
                               ("minlenratio", float, 0.0), ("nbest", int, 1)):
        parser.add_argument(f"--{name}", type=typ, default=default)
    return parser


def main(cmd: Optional[List[str]] = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s: %(message)s")
    args = get_parser().parse_args(cmd)
    opts = DecodeOptions(method=args.method, beam_impl=args.beam_impl, beam_size=args.beam_size,
                         ctc_weight=args.ctc_weight, penalty=args.penalty, maxlenratio=args.maxlenratio,
                         minlenratio=args.minlenratio, nbest=args.nbest)
    s2t = USR2Speech2Text(args.train_config, args.model_file, device="cuda" if args.ngpu > 0 else "cpu",
                          modalities=canonical_modalities(args.modalities), opts=opts, model_role=args.model_role)
    hyps = run_noise_sweep(args.data_dir, args.work_dir, s2t, [rb.parse_snr(s) for s in args.snrs],
                           noise_source(args.data_dir, args.noise_wav, args.n_talkers, args.noise_seed),
                           batch_size=args.batch_size)
    print("arguments for espnet_usr2.bin.usr2_robustness_report:")
    print(" ".join(f"--noise_hyp {spec}" for spec in noise_hyp_specs(hyps)))


if __name__ == "__main__":
    main()
