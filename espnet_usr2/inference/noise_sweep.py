"""Decoding under babble noise for the robustness report (paper Sec. 5.2, Table 1).

For each SNR a noisy copy of the test set is made with :mod:`espnet_usr2.data.babble`
(babble from the user's noise file, or synthesised from other utterances of the corpus),
then A and AV are decoded on it with one loaded model. The result is one hypothesis text
per (modality, SNR) and the ``--noise_hyp NAME@SNR=PATH`` arguments of
``espnet_usr2.bin.usr2_robustness_report``::

    python -m espnet_usr2.bin.usr2_noise_sweep --data_dir data/test --work_dir exp/m/noisy \\
        --train_config exp/m/config.yaml --model_file exp/m/valid.acc_av.ave.pth \\
        --snrs 10 5 0 -5 --config conf/decode_beam40.yaml

Layout: ``<work_dir>/data/snr<label>/`` (noisy ``wav.scp`` + the clean ``video.scp``,
``text``, ``utt2spk``) and ``<work_dir>/decode/snr<label>/<audio|audiovisual>/text``;
``label`` is the SNR with ``m`` for a minus sign (``snrm5``), ``clean`` without noise.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from espnet_usr2.analysis import robustness as rb
from espnet_usr2.data import babble
from espnet_usr2.inference.inference import inference
from espnet_usr2.inference.speech2text import USR2Speech2Text
from espnet_usr2.utils.modalities import AUDIO, AUDIOVISUAL, LONG_NAMES

log = logging.getLogger(__name__)
PathLike = Union[str, Path]
NOISE_MODALITIES = (AUDIO, AUDIOVISUAL)  # video-only decoding does not hear the noise
COPIED_FILES = ("video.scp", "text", "utt2spk", "utt2num_frames")


def noise_source(data_dir: PathLike, noise_wav: Optional[PathLike], n_talkers: int, seed: int) -> babble.NoiseSource:
    """The user's noise file, else babble from the other utterances of ``data_dir/wav.scp``."""
    if noise_wav is not None:
        return babble.FileNoise(noise_wav, seed=seed)
    return babble.CorpusBabble(babble.read_wav_scp(Path(data_dir) / "wav.scp"), n_talkers=n_talkers, seed=seed)


def make_noisy_data_dirs(
    data_dir: PathLike, out_root: PathLike, snrs: Sequence[float], source: babble.NoiseSource
) -> Dict[float, Path]:
    """One data directory per SNR (the clean one for ``inf``); returns ``{snr: data_dir}``."""
    data_dir = Path(data_dir)
    dirs = {}
    for snr in snrs:
        if math.isinf(snr):
            dirs[snr] = data_dir
            continue
        out = Path(out_root) / rb.condition_name(snr)
        babble.write_noisy_wav_scp(data_dir / "wav.scp", out, snr, source)
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


def run_noise_sweep(
    data_dir: PathLike,
    work_dir: PathLike,
    s2t: USR2Speech2Text,
    snrs: Sequence[float],
    source: babble.NoiseSource,
    batch_size: int = 1,
    log_interval: int = 100,
) -> Dict[Tuple[str, float], Path]:
    """Make the noisy copies and decode A / AV on each; returns ``{(modality, snr): hyp text}``."""
    modalities = list(s2t.modalities)
    if any(m not in NOISE_MODALITIES for m in modalities):
        raise ValueError(
            f"the noise sweep decodes {[LONG_NAMES[m] for m in NOISE_MODALITIES]}; "
            f"the decoder was set up for {list(s2t.modalities)}"
        )
    work_dir = Path(work_dir)
    dirs = make_noisy_data_dirs(data_dir, work_dir / "data", snrs, source)
    hyps: Dict[Tuple[str, float], Path] = {}
    for snr, noisy_dir in dirs.items():
        log.info("decoding %s at SNR %s dB", [LONG_NAMES[m] for m in modalities], rb.snr_label(snr))
        out = inference(
            work_dir / "decode" / rb.condition_name(snr),
            data_spec(noisy_dir, modalities),
            train_config=None,
            model_file=None,
            modalities=modalities,
            opts=s2t.opts,
            batch_size=batch_size,
            num_workers=0,
            log_interval=log_interval,
            s2t=s2t,
        )
        for m, d in out.items():
            hyps[(m, snr)] = d / "text"
    return hyps
