"""Decoding a data directory with a trained USR 2.0 model, for several modalities at once.

:func:`inference` streams a data directory through
:meth:`espnet_usr2.inference.speech2text.USR2Speech2Text.decode_batch` -- the code path the
library entry uses for arrays: one encoder pass for every requested modality, then each
modality's search -- and writes ESPnet's decode layout::

    <output_dir>/<audio|video|audiovisual>/{text,token,token_int,score}      (1-best)
    <output_dir>/<audio|video|audiovisual>/<n>best_recog/{text,token,token_int,score}

With ``allow_single_stream`` a data directory may hold utterances with one stream (an
audio-only utterance is missing from ``video.scp``, a video-only one from ``wav.scp``):
each utterance is decoded in every requested modality its streams allow (V for video-only,
A for audio-only, all of them for audio-visual ones). Each such group is streamed over its
own key subset with only the data files it has, because ESPnet's loader needs every listed
file to hold every key; an all-audio-visual set takes exactly the one-pass path as before.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from espnet2.fileio.datadir_writer import DatadirWriter
from espnet2.torch_utils.device_funcs import to_device

from espnet_usr2.decode.hyps import DecodeOptions, Hyp
from espnet_usr2.inference.speech2text import SPEECH, VIDEO_NAME, USR2Speech2Text
from espnet_usr2.tasks.usr2 import USR2Task
from espnet_usr2.utils.modalities import LONG_NAMES, canonical_modalities, needs_audio, needs_video

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


def check_data_inputs(
    data: DataSpec, modalities: Sequence[str], key_file: Optional[PathLike] = None, allow_single_stream: bool = False
) -> List[str]:
    """Check files, streams and keys before any decoding; returns the keys to decode.

    Raises :class:`DataInputError` naming the missing file, the data name to add, or the
    keys that a data file lacks. With ``allow_single_stream`` a key may be missing from
    the audio or the video file (not from both, nor from any other data file); without a
    key file the keys are then those of every data file, in order of first appearance.
    """
    if not data:
        raise DataInputError("no data given: use --data_path_and_name_and_type")
    if key_file is not None and not Path(key_file).is_file():
        raise DataInputError(f"key file {str(key_file)!r} does not exist")
    names = {name: path for path, name, _ in data}
    for path, name, _ in data:
        if not Path(path).is_file():
            raise DataInputError(f"data file {path!r} (data name '{name}') does not exist")
    for stream, wanted, example in (
        (VIDEO_NAME, needs_video(modalities), "video.scp,video,roi_video"),
        (SPEECH, needs_audio(modalities), "wav.scp,speech,sound"),
    ):
        if wanted and stream not in names:
            need = [m for m in modalities if (m != "a" if stream == VIDEO_NAME else m != "v")]
            raise DataInputError(
                f"modalities {need} need the '{stream}' input, but no data file is named '{stream}': add "
                f"--data_path_and_name_and_type <data_dir>/{example}"
            )
    file_keys = {path: read_keys(path) for path, _, _ in data}
    if key_file is not None:
        keys = read_keys(key_file)
    elif allow_single_stream:
        keys = list(dict.fromkeys(k for path, _, _ in data for k in file_keys[path]))
    else:
        keys = file_keys[data[0][0]]
    if not keys:
        raise DataInputError(f"nothing to decode: {key_file or data[0][0]} lists no utterances")
    source = f"key file {str(key_file)!r}" if key_file is not None else f"{data[0][0]!r}"
    one_stream = [path for path, name, _ in data if allow_single_stream and name in (SPEECH, VIDEO_NAME)]
    for path, available in file_keys.items():
        available = set(available)
        missing = [k for k in keys if k not in available]
        if missing and path not in one_stream:
            hint = (
                " (utterances with one stream: --allow_single_stream true)"
                if not allow_single_stream and path in names.values()
                else ""
            )
            raise DataInputError(
                f"{len(missing)} utterance(s) of {source} are not in {path!r}: {_name_some(missing)}{hint}"
            )
    if one_stream:
        in_any = set().union(*(file_keys[p] for p in one_stream))
        missing = [k for k in keys if k not in in_any]
        if missing:
            raise DataInputError(
                f"{len(missing)} utterance(s) of {source} are in none of {one_stream}: {_name_some(missing)}"
            )
    return keys


@dataclass
class StreamGroup:
    """Utterances with the same streams, decoded together in the modalities those allow."""

    streams: Tuple[str, ...]  # data names present: (SPEECH, VIDEO_NAME), (VIDEO_NAME,) or (SPEECH,)
    keys: List[str]
    modalities: Tuple[str, ...]  # the requested modalities these streams allow (may be empty)
    data: List[Tuple[str, str, str]]  # the data files these utterances are all in

    @property
    def label(self) -> str:
        return {2: "audio-visual", 1: "video-only" if VIDEO_NAME in self.streams else "audio-only"}[len(self.streams)]


def stream_groups(data: DataSpec, modalities: Sequence[str], keys: Sequence[str]) -> List[StreamGroup]:
    """Split ``keys`` by the audio/video files that hold them: audio-visual, video-only, audio-only."""
    stream_files = {name: set(read_keys(path)) for path, name, _ in data if name in (SPEECH, VIDEO_NAME)}
    by_streams: Dict[Tuple[str, ...], List[str]] = {}
    for k in keys:
        present = tuple(n for n in (SPEECH, VIDEO_NAME) if k in stream_files.get(n, ()))
        by_streams.setdefault(present, []).append(k)
    groups = []
    order = [(SPEECH, VIDEO_NAME), (VIDEO_NAME,), (SPEECH,)]  # audio-visual, video-only, audio-only
    for present in sorted(by_streams, key=order.index):
        allowed = tuple(
            m
            for m in modalities
            if (not needs_audio([m]) or SPEECH in present) and (not needs_video([m]) or VIDEO_NAME in present)
        )
        files = [d for d in data if d[1] not in (SPEECH, VIDEO_NAME) or d[1] in present]
        groups.append(StreamGroup(present, by_streams[present], allowed, files))
    return groups


# ============================================================================ data directory


def build_loader(
    s2t: USR2Speech2Text,
    data: DataSpec,
    key_file: Optional[PathLike],
    batch_size: int,
    dtype: str,
    num_workers: int,
    allow_variable_data_keys: bool,
    ngpu: int,
):
    """ESPnet's streaming iterator with the task's preprocessing (audio/video alignment)."""
    args = s2t.train_args
    return USR2Task.build_streaming_iterator(
        data,
        key_file=str(key_file) if key_file is not None else None,
        batch_size=batch_size,
        dtype=dtype,
        num_workers=num_workers,
        preprocess_fn=USR2Task.build_preprocess_fn(args, False),
        collate_fn=USR2Task.build_collate_fn(args, False),
        allow_variable_data_keys=allow_variable_data_keys,
        ngpu=ngpu,
        inference=True,
    )


class ModalityWriter:
    """ESPnet's decode layout for one modality: 1-best files at the top, ``<n>best_recog/``.

    One ``DatadirWriter`` per directory: ESPnet's writer checks that all its children hold
    the same ids, which a directory mixing files and sub-directories would fail.
    """

    FILES = ("token", "token_int", "score", "text")

    def __init__(self, root: PathLike, nbest: int = 1):
        self.root = Path(root)
        self.nbest = nbest
        self.top = DatadirWriter(self.root)
        self.ranks: Dict[int, DatadirWriter] = {}

    def write(self, s2t: USR2Speech2Text, key: str, nbest: Sequence[Hyp]) -> None:
        for n, hyp in enumerate(nbest, 1):
            text, tokens, token_int, _ = s2t.result(hyp)
            values = dict(
                token=" ".join(tokens), token_int=" ".join(map(str, token_int)), score=str(hyp.score), text=text
            )
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
        if not self.ranks:
            # no utterance had this modality's streams (a job of single-stream utterances):
            # empty files keep every job's layout the same for merging and scoring
            for d in [self.root] + [self.root / f"{n}best_recog" for n in range(1, self.nbest + 1)]:
                d.mkdir(parents=True, exist_ok=True)
                for name in self.FILES:
                    (d / name).touch()


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
        return (
            f"decoded {self.done}/{self.total} utterances in {elapsed:.1f} s "
            f"({self.done / max(elapsed, 1e-9):.2f} utt/s, RTF {rtf:.3f})"
        )


def inference(
    output_dir: PathLike,
    data_path_and_name_and_type: DataSpec,
    train_config: PathLike,
    model_file: Optional[PathLike],
    modalities: Sequence[str],
    opts: DecodeOptions,
    key_file: Optional[PathLike] = None,
    model_role: str = "student",
    batch_size: int = 1,
    ngpu: int = 0,
    seed: int = 0,
    dtype: str = "float32",
    num_workers: int = 1,
    token_type: Optional[str] = None,
    bpemodel: Optional[str] = None,
    allow_variable_data_keys: bool = False,
    log_interval: int = 100,
    s2t: Optional[USR2Speech2Text] = None,
    lm_train_config: Optional[PathLike] = None,
    lm_file: Optional[PathLike] = None,
    allow_single_stream: bool = False,
) -> Dict[str, Path]:
    """Decode a data directory; returns ``{modality: output directory}``.

    ``s2t`` reuses an already loaded model (several noise conditions, tests);
    ``lm_train_config`` / ``lm_file``: an ESPnet LM fused with weight ``opts.lm_weight``;
    ``allow_single_stream``: utterances missing from the audio or the video file are decoded
    in the modalities their one stream allows (see the module docstring).
    """
    modalities = canonical_modalities(modalities)
    data = [tuple(d) for d in data_path_and_name_and_type]
    keys = check_data_inputs(data, modalities, key_file, allow_single_stream)
    if allow_single_stream:
        groups = stream_groups(data, modalities, keys)
    else:
        groups = [StreamGroup((SPEECH, VIDEO_NAME), keys, modalities, data)]
    torch.manual_seed(seed)
    np.random.seed(seed)
    device = "cuda" if ngpu > 0 else "cpu"
    if s2t is None:
        s2t = USR2Speech2Text(
            train_config,
            model_file,
            modalities=modalities,
            opts=opts,
            device=device,
            dtype=dtype,
            model_role=model_role,
            token_type=token_type,
            bpemodel=bpemodel,
            lm_train_config=lm_train_config,
            lm_file=lm_file,
        )
    elif tuple(s2t.modalities) != modalities:
        raise ValueError(f"the loaded decoder is set up for {list(s2t.modalities)}, not {list(modalities)}")
    out_dirs = {m: Path(output_dir) / LONG_NAMES[m] for m in modalities}
    fps = float(getattr(s2t.train_args, "video_fps", 25))
    decodable = [g for g in groups if g.modalities]
    progress = Progress(sum(len(g.keys) for g in decodable), log_interval, fps)
    log.info(
        "decoding %d utterances, modalities %s, method %s%s",
        progress.total,
        list(modalities),
        opts.method,
        f" ({opts.beam_impl}, beam {opts.beam_size}, ctc_weight {opts.ctc_weight}"
        f"{f', lm_weight {opts.lm_weight}' if s2t.lm is not None else ''})"
        if opts.method == "beam"
        else "",
    )
    for g in groups:
        if not g.modalities:
            log.warning(
                "%d %s utterance(s) have none of the requested modalities %s and are not decoded: %s",
                len(g.keys),
                g.label,
                list(modalities),
                _name_some(g.keys),
            )
    writers = {m: ModalityWriter(d, opts.nbest) for m, d in out_dirs.items()}
    try:
        with tempfile.TemporaryDirectory(prefix="usr2_keys_") as tmp:
            for n, g in enumerate(decodable):
                # one group = the whole request: the loader reads the given key file as always
                group_key_file = key_file if len(groups) == 1 else _write_keys(Path(tmp) / f"keys.{n}", g.keys)
                loader = build_loader(
                    s2t, g.data, group_key_file, batch_size, dtype, num_workers, allow_variable_data_keys, ngpu
                )
                _decode_group(s2t, loader, g.modalities, writers, progress)
    finally:
        for w in writers.values():
            w.close()
    if progress.done != progress.total:
        raise RuntimeError(f"decoded {progress.done} utterances but {progress.total} were listed")
    if allow_single_stream:
        log.info(
            "decoded per modality: %s (%s)",
            ", ".join(f"{m.upper()} {sum(len(g.keys) for g in decodable if m in g.modalities)}" for m in modalities),
            ", ".join(f"{len(g.keys)} {g.label}" for g in groups),
        )
    return out_dirs


def _write_keys(path: Path, keys: Sequence[str]) -> Path:
    path.write_text("".join(f"{k}\n" for k in keys), encoding="utf-8")
    return path


def _decode_group(
    s2t: USR2Speech2Text, loader, modalities: Sequence[str], writers: Dict[str, "ModalityWriter"], progress: Progress
) -> None:
    """Decode one loader's utterances in ``modalities`` (one encoder pass per batch)."""
    for batch_keys, batch in loader:
        batch = to_device(batch, s2t.device)
        frames = s2t.frames(batch, modalities)
        for key, n in zip(batch_keys, frames.tolist()):
            if n == 0:
                log.warning("utterance %r has no input frames: writing an empty hypothesis", key)
        for m, per_utt in s2t.decode_batch(batch, modalities).nbest.items():
            for key, nbest in zip(batch_keys, per_utt):
                writers[m].write(s2t, key, nbest)
        progress.update(len(batch_keys), int(frames.sum()))
