"""Shape files for ESPnet's batch samplers, written from the lists data preparation made.

ESPnet learns each utterance's shape with ``--collect_stats``: one process builds the model,
decodes every clip of a set and writes ``<name>_shape`` (``utt-id dim[,dim...]``),
``batch_keys`` and ``stats_keys``. This model keeps no feature statistics (it normalises
audio and pixels itself), so the only output anything reads is the shapes -- and stages 2-4
already wrote them, which makes the serial decode the slowest part of preparing a large
corpus (VoxCeleb2's ~1.1 M clips: about 10 hours on one core at 0.03 s a clip).

This module writes the same files from the lists instead:

* ``video_shape``  ``T,H,W``: ``T`` from ``utt2num_frames`` (stage 2 counts the frames it
  writes, stage 3 sorts it beside ``video.scp``), ``H,W`` the mouth-ROI size, read from the
  headers of a few files spread over the set (data preparation writes one size; a set
  whose sampled sizes differ is refused, naming two files);
* ``speech_shape`` ``T * samples_per_frame``: the preprocessor trims or pads every
  utterance's audio to exactly that many samples (:func:`~espnet_usr2.data.av_sync.align_audio_to_video`;
  stage 4 has dropped the utterances whose streams disagree);
* ``text_shape``   the number of token ids the task's own preprocessor makes of the
  transcript (the caller passes that count as a function).

The lines come in the key file's order (ESPnet iterates the first shape file): byte for byte
what ``--collect_stats`` writes with ``num_workers: 0`` (tested on generated corpora); with
data-loader workers ESPnet interleaves their items, the same lines in another order (the
samplers read the files into a dict).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from espnet2.fileio.read_text import read_2columns_text

from espnet_usr2.data.roi_io import roi_frame_size

SPEECH, VIDEO, TEXT = "speech", "video", "text"
FRAME_SIZE_SAMPLES = 16  # ROI headers read per set to learn (and check) the frame size

logger = logging.getLogger(__name__)
TokenCounter = Callable[[str, str], int]  # (utt-id, transcript) -> number of token ids
ListReader = Callable[[Path], Dict[str, str]]  # a Kaldi-style list as {key: value}


class ShapeSourceError(ValueError):
    """The lists of a data directory cannot give an utterance's shape."""


@dataclass(frozen=True)
class DataSource:
    """One ``--*_data_path_and_name_and_type`` triple: a list file, its name and loader type."""

    path: Path
    name: str
    kind: str

    @classmethod
    def of(cls, triple: Sequence[str]) -> "DataSource":
        """From ESPnet's parsed option: (path, name, type)."""
        path, name, kind = triple
        return cls(Path(path), name, kind)


def list_reader() -> ListReader:
    """ESPnet's list reader (as its data loaders read the lists), each file read once: the key
    file is usually one of the data lists too."""

    @functools.lru_cache(maxsize=None)
    def read(path: Path) -> Dict[str, str]:
        return read_2columns_text(path)

    return lambda path: read(Path(path).resolve())


def _require(entries: Dict[str, str], keys: Iterable[str], path: Path, what: str) -> None:
    missing = [k for k in keys if k not in entries]
    if missing:
        raise ShapeSourceError(
            f"{path} lists no {what} for {len(missing)} utterance(s) of the key file, "
            f"e.g. {missing[0]!r}; rerun stages 3-4 so the lists agree"
        )


def _spread(items: Sequence[str], count: int) -> List[str]:
    """Up to ``count`` items evenly spaced from first to last."""
    if len(items) <= count:
        return list(items)
    step = (len(items) - 1) / (count - 1)
    return [items[round(i * step)] for i in range(count)]


def common_frame_size(paths: Sequence[str], set_name: str) -> Tuple[int, int]:
    """The one (H, W) of a set's ROI files, from the headers of a spread sample of them."""
    sizes = {}
    for path in _spread(paths, FRAME_SIZE_SAMPLES):
        sizes.setdefault(roi_frame_size(path), path)
    if len(sizes) > 1:
        (size_a, path_a), (size_b, path_b) = list(sizes.items())[:2]
        raise ShapeSourceError(
            f"the mouth ROIs of {set_name} differ in size ({path_a}: {size_a[0]}x{size_a[1]}, {path_b}: "
            f"{size_b[0]}x{size_b[1]}); data preparation writes one size -- re-extract the odd ones (stage 2)"
        )
    return next(iter(sizes))


def num_frames_beside(video_list: Path, keys: Sequence[str], read: ListReader) -> Dict[str, int]:
    """Video frame counts from the ``utt2num_frames`` next to ``video.scp`` (stage 3 writes it)."""
    path = video_list.parent / "utt2num_frames"
    if not path.is_file():
        raise ShapeSourceError(
            f"{path} not found: stage 3 writes it beside {video_list.name} (video frame "
            "counts, the shapes' source); rerun stage 3 for this set"
        )
    frames = read(path)
    _require(frames, keys, path, "frame count")
    return {k: int(frames[k]) for k in keys}


def shape_lines(
    sources: Sequence[DataSource],
    keys: Sequence[str],
    samples_per_frame: int,
    count_tokens: Optional[TokenCounter],
    read: ListReader,
) -> Dict[str, List[str]]:
    """``{"<name>_shape": ["<key> <shape>", ...]}`` for the sources' names, in key order."""
    by_name = {s.name: s for s in sources}
    unknown = sorted(set(by_name) - {SPEECH, VIDEO, TEXT})
    if unknown:
        raise ShapeSourceError(
            f"no shape rule for data name(s) {unknown}: this writes speech, video and text "
            "shapes (usr2_train --collect_stats reads any data)"
        )
    if SPEECH in by_name and VIDEO not in by_name:
        raise ShapeSourceError("speech shapes come from the video frame counts: give the video list too")
    lines: Dict[str, List[str]] = {}
    if VIDEO in by_name:
        video = by_name[VIDEO]
        paths = read(video.path)
        _require(paths, keys, video.path, "video file")
        frames = num_frames_beside(video.path, keys, read)
        height, width = common_frame_size([paths[k] for k in keys], str(video.path.parent))
        lines[f"{VIDEO}_shape"] = [f"{k} {frames[k]},{height},{width}" for k in keys]
        if SPEECH in by_name:
            audio = read(by_name[SPEECH].path)
            _require(audio, keys, by_name[SPEECH].path, "audio file")
            lines[f"{SPEECH}_shape"] = [f"{k} {frames[k] * samples_per_frame}" for k in keys]
    if TEXT in by_name:
        if count_tokens is None:
            raise ShapeSourceError("text shapes need the tokenizer (--token_list / --bpemodel)")
        texts = read(by_name[TEXT].path)
        _require(texts, keys, by_name[TEXT].path, "transcript")
        lines[f"{TEXT}_shape"] = [f"{k} {count_tokens(k, texts[k])}" for k in keys]
    return lines


def write_shape_files(
    sources: Sequence[DataSource],
    key_file: Path,
    out_dir: Path,
    samples_per_frame: int,
    count_tokens: Optional[TokenCounter] = None,
) -> int:
    """Write ``<name>_shape``, ``batch_keys`` and ``stats_keys`` into ``out_dir`` as ESPnet's
    ``--collect_stats`` does for these sources; returns the number of utterances."""
    read = list_reader()
    keys = list(read(key_file))
    if not keys:
        raise ShapeSourceError(f"{key_file} lists no utterance")
    lines = shape_lines(sources, keys, samples_per_frame, count_tokens, read)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, rows in lines.items():
        (out_dir / name).write_text("".join(f"{row}\n" for row in rows), encoding="utf-8")
    # ESPnet: the batch's data names (its collate sorts them), and the names with feature
    # statistics -- none here, which ESPnet writes as one empty line
    names = sorted(s.name for s in sources)
    (out_dir / "batch_keys").write_text("\n".join(names) + "\n", encoding="utf-8")
    (out_dir / "stats_keys").write_text("\n", encoding="utf-8")
    logger.info("%s: shapes of %d utterances (%s) from the lists", out_dir, len(keys), ", ".join(names))
    return len(keys)
