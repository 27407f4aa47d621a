"""The ``roi_video`` data type for ESPnet's dataset: mouth-ROI sequences listed in an scp.

An scp line is ``<utt-id> <path>``; the file is any format :mod:`espnet_usr2.data.roi_io`
reads (lossless .mkv, .npz, .npy, or another video container). Frames are loaded as
float32 (T, H, W) with pixel values 0..255 -- ESPnet's dataset accepts only float and int
arrays, and the model normalises pixels itself.

ESPnet matches loader types with ``re.match`` against its own names, in order, so this type
needs a name no built-in type is a prefix of (``npy_video`` would be read as ``npy``).
Registration happens on import of this module (the task module imports it), which also
runs in DDP worker processes because their entry point is the task's classmethod.
"""

from __future__ import annotations

import collections.abc
from pathlib import Path
from typing import Dict, Iterator, Union

import numpy as np
from espnet2.fileio.read_text import read_2columns_text
from espnet2.train import dataset as espnet_dataset

from espnet_usr2.data.roi_io import load_roi

ROI_VIDEO_TYPE = "roi_video"


class RoiVideoReader(collections.abc.Mapping):
    """Lazy mapping utt-id -> float32 (T, H, W) frames, read from an scp file."""

    def __init__(self, fname: Union[str, Path]):
        self.fname = str(fname)
        self.paths: Dict[str, str] = read_2columns_text(fname)

    def __getitem__(self, key: str) -> np.ndarray:
        try:
            path = self.paths[key]
        except KeyError:
            raise KeyError(f"utterance {key!r} is not listed in {self.fname}") from None
        return load_roi(path).astype(np.float32)

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def keys(self):
        return self.paths.keys()


def register_roi_video_type() -> None:
    """Add ``roi_video`` to ESPnet's table of data types (idempotent)."""
    for existing in espnet_dataset.DATA_TYPES:
        if existing != ROI_VIDEO_TYPE and ROI_VIDEO_TYPE.startswith(existing):
            raise RuntimeError(f"ESPnet data type {existing!r} would shadow {ROI_VIDEO_TYPE!r}")
    espnet_dataset.DATA_TYPES[ROI_VIDEO_TYPE] = dict(
        func=RoiVideoReader,
        kwargs=[],
        help="Mouth-ROI frames (lossless .mkv / .npz / .npy, uint8 on disk), loaded as float (T, H, W)."
        "\n\n   utterance_id_a /some/where/a.mkv\n   utterance_id_b /some/where/b.npz",
    )


register_roi_video_type()
