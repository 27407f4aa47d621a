"""Reading and writing mouth-ROI sequences: grayscale uint8 arrays of shape (T, H, W).

Mouth crops are stored compactly, never as float32 (4x the disk for a 1,000-hour corpus):

* ``.mkv`` -- lossless FFV1 video, ``gray`` pixels (the default written by data prep;
  roughly 2-3x smaller than raw uint8),
* ``.mp4`` / ``.avi`` / other containers -- any video PyAV decodes (converted to gray),
* ``.npy`` -- a raw uint8 array, ``.npz`` -- a zlib-compressed uint8 array (key ``roi``).

The frame rate of stored ROIs is 25 fps by convention (one frame per 640 audio samples).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Tuple, Union

import numpy as np

PathLike = Union[str, Path]
ROI_FPS = 25
VIDEO_SUFFIXES = (".mkv", ".mp4", ".avi", ".mov", ".webm")


class RoiFormatError(ValueError):
    """A stored ROI sequence cannot be read or has the wrong shape."""


def _check_frames(frames: np.ndarray, path: PathLike) -> np.ndarray:
    if frames.ndim != 3:
        raise RoiFormatError(f"{path}: expected (T, H, W) grayscale frames, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise RoiFormatError(f"{path}: expected uint8 frames, got {frames.dtype}")
    return frames


def save_roi(path: PathLike, frames: np.ndarray, fps: int = ROI_FPS) -> Path:
    """Write uint8 frames (T, H, W) to ``path``; the suffix picks the format."""
    path = Path(path)
    frames = _check_frames(np.asarray(frames), path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".npy":
        np.save(path, frames)
    elif path.suffix == ".npz":
        np.savez_compressed(path, roi=frames)
    elif path.suffix == ".mkv":
        _write_ffv1(path, frames, fps)
    else:
        raise RoiFormatError(f"{path}: ROIs are written as .mkv (lossless FFV1), .npz or .npy")
    return path


def _write_ffv1(path: Path, frames: np.ndarray, fps: int) -> None:
    import av

    if len(frames) == 0:
        raise RoiFormatError(f"{path}: refusing to write an empty ROI sequence")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "gray"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="gray")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def load_roi(path: PathLike) -> np.ndarray:
    """Read a stored ROI sequence as uint8 (T, H, W), whatever its format."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ROI file not found: {path}")
    if path.suffix == ".npy":
        frames = np.load(path)
    elif path.suffix == ".npz":
        with np.load(path) as archive:
            if "roi" not in archive:
                raise RoiFormatError(f"{path}: no 'roi' array in the archive (has {list(archive)})")
            frames = archive["roi"]
    elif path.suffix in VIDEO_SUFFIXES:
        frames = _read_video_gray(path)
    else:
        raise RoiFormatError(f"{path}: unknown ROI format {path.suffix!r}")
    return _check_frames(frames, path)


def roi_frame_size(path: PathLike) -> Tuple[int, int]:
    """(H, W) of a stored ROI sequence, from the file's header where it has one (no decoding)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"ROI file not found: {path}")
    if path.suffix == ".npy":
        shape = np.load(path, mmap_mode="r").shape
    elif path.suffix in VIDEO_SUFFIXES:
        shape = (0, *_video_frame_size(path))
    else:  # .npz is compressed: only reading the array gives its shape
        shape = load_roi(path).shape
    if len(shape) != 3:
        raise RoiFormatError(f"{path}: expected (T, H, W) grayscale frames, got shape {shape}")
    return int(shape[1]), int(shape[2])


def _video_frame_size(path: Path) -> Tuple[int, int]:
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            return stream.codec_context.height, stream.codec_context.width
    except (av.error.FFmpegError, IndexError) as err:  # IndexError: no video stream
        raise RoiFormatError(f"{path}: cannot read the video header ({err})") from err


def _read_video_gray(path: Path) -> np.ndarray:
    import av

    try:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="gray") for f in container.decode(video=0)]
    except (av.error.FFmpegError, IndexError) as err:  # IndexError: no video stream
        raise RoiFormatError(f"{path}: cannot decode video ({err})") from err
    if not frames:
        raise RoiFormatError(f"{path}: the video has no frames")
    return np.stack(frames)
