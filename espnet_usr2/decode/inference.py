"""Decoding a data directory with a trained USR 2.0 model, for several modalities at once.

:func:`inference` streams a data directory through
:meth:`espnet_usr2.decode.speech2text.USR2Speech2Text.decode_batch` -- the code path the
library entry uses for arrays: one encoder pass for every requested modality, then each
modality's search -- and writes ESPnet's decode layout::

    <output_dir>/<audio|video|audiovisual>/{text,token,token_int,score}      (1-best)
    <output_dir>/<audio|video|audiovisual>/<n>best_recog/{text,token,token_int,score}
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.torch_utils.device_funcs import to_device

from espnet_usr2.decode.hyps import DecodeOptions, Hyp
from espnet_usr2.decode.speech2text import SPEECH, VIDEO_NAME, USR2Speech2Text
from espnet_usr2.model.modalities import LONG_NAMES, canonical_modalities, needs_audio, needs_video
from espnet_usr2.tasks.usr2 import USR2Task

log = logging.getLogger(__name__)

PathLike = Union[str, Path]
DataSpec = Sequence[Tuple[str, str, str]]


class DataInputError(ValueError):
    """The data given for decoding does not fit the request (missing file, stream or key)."""


# ============================================================================ input checks


def read_keys(path: PathLike) -> List[str]:
    """First column of a Kaldi-style file (scp, text, key file), in file order."""
    keys = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            fields = line.split(maxsplit=1)
            if fields:
                keys.append(fields[0])
    return keys


def _name_some(keys: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def check_data_inputs(data: DataSpec, modalities: Sequence[str], key_file: Optional[PathLike] = None) -> List[str]:
    """Check files, streams and keys before any decoding; returns the keys to decode.

    Raises :class:`DataInputError` naming the missing file, the data name to add, or the
    keys that a data file lacks.
    """
    if not data:
        raise DataInputError("no data given: use --data_path_and_name_and_type")
    if key_file is not None and not Path(key_file).is_file():
        raise DataInputError(f"key file {str(key_file)!r} does not exist")
    names = {name: path for path, name, _ in data}
    for path, name, _ in data:
        if not Path(path).is_file():
            raise DataInputError(f"data file {path!r} (data name '{name}') does not exist")
    for stream, wanted, example in ((VIDEO_NAME, needs_video(modalities), "video.scp,video,roi_video"),
                                    (SPEECH, needs_audio(modalities), "wav.scp,speech,sound")):
        if wanted and stream not in names:
            need = [m for m in modalities if (m != "a" if stream == VIDEO_NAME else m != "v")]
            raise DataInputError(
                f"modalities {need} need the '{stream}' input, but no data file is named '{stream}': add "
                f"--data_path_and_name_and_type <data_dir>/{example}")
    file_keys = {path: read_keys(path) for path, _, _ in data}
    keys = read_keys(key_file) if key_file is not None else file_keys[data[0][0]]
    if not keys:
        raise DataInputError(f"nothing to decode: {key_file or data[0][0]} lists no utterances")
    for path, available in file_keys.items():
        available = set(available)
        missing = [k for k in keys if k not in available]
        if missing:
            source = f"key file {str(key_file)!r}" if key_file is not None else f"{data[0][0]!r}"
            raise DataInputError(f"{len(missing)} utterance(s) of {source} are not in {path!r}: "
                                 f"{_name_some(missing)}")
    return keys


# ============================================================================ data directory


def build_loader(s2t: USR2Speech2Text, data: DataSpec, key_file: Optional[PathLike], batch_size: int,
                 dtype: str, num_workers: int, allow_variable_data_keys: bool, ngpu: int):
    """ESPnet's streaming iterator with the task's preprocessing (audio/video alignment)."""
    args = s2t.train_args
    return USR2Task.build_streaming_iterator(
        data, key_file=str(key_file) if key_file is not None else None, batch_size=batch_size, dtype=dtype,
        num_workers=num_workers, preprocess_fn=USR2Task.build_preprocess_fn(args, False),
        collate_fn=USR2Task.build_collate_fn(args, False), allow_variable_data_keys=allow_variable_data_keys,
        ngpu=ngpu, inference=True)


class ModalityWriter:
    """ESPnet's decode layout for one modality: 1-best files at the top, ``<n>best_recog/``.

    One ``DatadirWriter`` per directory: ESPnet's writer checks that all its children hold
    the same ids, which a directory mixing files and sub-directories would fail.
    """

    FILES = ("token", "token_int", "score", "text")

    def __init__(self, root: PathLike):
        self.root = Path(root)
        self.top = DatadirWriter(self.root)
        self.ranks: Dict[int, DatadirWriter] = {}

    def write(self, s2t: USR2Speech2Text, key: str, nbest: Sequence[Hyp]) -> None:
        for n, hyp in enumerate(nbest, 1):
            text, tokens, token_int, _ = s2t.result(hyp)
            values = dict(token=" ".join(tokens), token_int=" ".join(map(str, token_int)), score=str(hyp.score),
                          text=text)
            if n not in self.ranks:
                self.ranks[n] = DatadirWriter(self.root / f"{n}best_recog")
            targets = [self.ranks[n]] + ([self.top] if n == 1 else [])
            for target in targets:
                for name in self.FILES:
                    target[name][key] = values[name]

    def close(self) -> None:
        self.top.close()
        for w in self.ranks.values():
            w.close()


class Progress:
    """Logs decoded / total utterances, speed and real-time factor every ``interval`` utterances."""

    def __init__(self, total: int, interval: int, fps: float):
        self.total, self.interval, self.fps = total, max(1, interval), fps
        self.done = self.frames = self.last_report = 0
        self.start = time.perf_counter()

    def update(self, n_utts: int, n_frames: int) -> None:
        self.done += n_utts
        self.frames += n_frames
        if self.done - self.last_report >= self.interval or self.done == self.total:
            self.last_report = self.done
            log.info("%s", self.line())

    def line(self) -> str:
        elapsed = time.perf_counter() - self.start
        audio_s = self.frames / self.fps
        rtf = elapsed / audio_s if audio_s > 0 else float("nan")
        return (f"decoded {self.done}/{self.total} utterances in {elapsed:.1f} s "
                f"({self.done / max(elapsed, 1e-9):.2f} utt/s, RTF {rtf:.3f})")


def inference(output_dir: PathLike, data_path_and_name_and_type: DataSpec, train_config: PathLike,
              model_file: Optional[PathLike], modalities: Sequence[str], opts: DecodeOptions,
              key_file: Optional[PathLike] = None, model_role: str = "student", batch_size: int = 1,
              ngpu: int = 0, seed: int = 0, dtype: str = "float32", num_workers: int = 1,
              token_type: Optional[str] = None, bpemodel: Optional[str] = None,
              allow_variable_data_keys: bool = False, log_interval: int = 100,
              s2t: Optional[USR2Speech2Text] = None, lm_train_config: Optional[PathLike] = None,
              lm_file: Optional[PathLike] = None) -> Dict[str, Path]:
    """Decode a data directory; returns ``{modality: output directory}``.

    ``s2t`` reuses an already loaded model (several noise conditions, tests);
    ``lm_train_config`` / ``lm_file``: an ESPnet LM fused with weight ``opts.lm_weight``.
    """
    modalities = canonical_modalities(modalities)
    data = [tuple(d) for d in data_path_and_name_and_type]
    keys = check_data_inputs(data, modalities, key_file)
    torch.manual_seed(seed)
    np.random.seed(seed)
    device = "cuda" if ngpu > 0 else "cpu"
    if s2t is None:
        s2t = USR2Speech2Text(train_config, model_file, modalities=modalities, opts=opts, device=device,
                              dtype=dtype, model_role=model_role, token_type=token_type, bpemodel=bpemodel,
                              lm_train_config=lm_train_config, lm_file=lm_file)
    elif tuple(s2t.modalities) != modalities:
        raise ValueError(f"the loaded decoder is set up for {list(s2t.modalities)}, not {list(modalities)}")
    loader = build_loader(s2t, data, key_file, batch_size, dtype, num_workers, allow_variable_data_keys, ngpu)
    out_dirs = {m: Path(output_dir) / LONG_NAMES[m] for m in modalities}
    fps = float(getattr(s2t.train_args, "video_fps", 25))
    progress = Progress(len(keys), log_interval, fps)
    log.info("decoding %d utterances, modalities %s, method %s%s", len(keys), list(modalities), opts.method,
             f" ({opts.beam_impl}, beam {opts.beam_size}, ctc_weight {opts.ctc_weight}"
             f"{f', lm_weight {opts.lm_weight}' if s2t.lm is not None else ''})"
             if opts.method == "beam" else "")
    writers = {m: ModalityWriter(d) for m, d in out_dirs.items()}
    try:
        for batch_keys, batch in loader:
            batch = to_device(batch, s2t.device)
            frames = s2t.frames(batch)
            for key, n in zip(batch_keys, frames.tolist()):
                if n == 0:
                    log.warning("utterance %r has no input frames: writing an empty hypothesis", key)
            for m, per_utt in s2t.decode_batch(batch).nbest.items():
                for key, nbest in zip(batch_keys, per_utt):
                    writers[m].write(s2t, key, nbest)
            progress.update(len(batch_keys), int(frames.sum()))
    finally:
        for w in writers.values():
            w.close()
    if progress.done != len(keys):
        raise RuntimeError(f"decoded {progress.done} utterances but {len(keys)} were listed")
    return out_dirs
