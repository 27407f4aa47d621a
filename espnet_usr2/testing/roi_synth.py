"""Synthetic talking-face clips for testing and benchmarking ROI preparation (test material only).

The face is scikit-image's public-domain astronaut photo (Eileen Collins), moved,
scaled and rotated a little on every frame, so a correct alignment must undo the jitter.
Audio is a tone (any rate / channel count), muxed with PyAV into an mp4 (H.264 + AAC)
like the LRS3 clips. Each frame's transform from photo to frame is returned, which lets
tests measure how well the crop follows the face.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Collection, Optional, Union

import numpy as np

PathLike = Union[str, Path]

# Where the face is in skimage.data.astronaut() (512x512): centre between the eyes and
# the mouth, and a square that holds the whole face with some margin.
PHOTO_FACE_CENTER = (222.0, 125.0)
PHOTO_FACE_SIDE = 200.0


@dataclass
class SynthClip:
    """A written clip and the ground truth of how it was made."""

    path: Path
    num_frames: int
    fps: int
    photo_to_frame: np.ndarray  # (T, 2, 3) affine from photo pixels to frame pixels
    face_frames: np.ndarray  # (T,) bool: False where the face was blanked out


def _photo() -> np.ndarray:
    import skimage.data

    return skimage.data.astronaut()


def _wander(num_frames: int, fps: float, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random trajectory within +-amplitude: two sinusoids of 0.3-1.5 Hz.

    Real heads drift smoothly (well below the 5 Hz a short landmark smoother passes);
    frame-independent noise would be a camera shake no talking-face video has.
    """
    t = np.arange(num_frames) / fps
    freqs = rng.uniform(0.3, 1.5, size=2)
    phases = rng.uniform(0, 2 * np.pi, size=2)
    waves = np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])
    return amplitude * 0.5 * waves.sum(axis=0)


def jitter_transforms(
    num_frames: int,
    size: int,
    seed: int = 0,
    fps: float = 25.0,
    shift_px: float = 6.0,
    scale: float = 0.06,
    rotate_deg: float = 4.0,
) -> np.ndarray:
    """Per-frame photo -> frame affines: the face centred, then moved, scaled and rotated
    a little on every frame along smooth random trajectories."""
    rng = np.random.default_rng(seed)
    base = size / PHOTO_FACE_SIDE
    scales = base * (1.0 + _wander(num_frames, fps, rng, scale))
    angles = np.deg2rad(_wander(num_frames, fps, rng, rotate_deg))
    shifts = np.stack([_wander(num_frames, fps, rng, shift_px), _wander(num_frames, fps, rng, shift_px)], axis=1)
    cos, sin = scales * np.cos(angles), scales * np.sin(angles)
    out = np.empty((num_frames, 2, 3))
    out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = cos, -sin, sin, cos
    target = size / 2.0 + shifts
    out[:, :, 2] = target - np.einsum("tij,j->ti", out[:, :, :2], np.asarray(PHOTO_FACE_CENTER))
    return out


def render_frames(transforms: np.ndarray, size: int, face_frames: np.ndarray) -> np.ndarray:
    """RGB frames (T, size, size, 3); frames without a face show a flat wall instead."""
    import cv2

    photo = _photo()
    frames = np.empty((len(transforms), size, size, 3), np.uint8)
    for t, matrix in enumerate(transforms):
        if face_frames[t]:
            frames[t] = cv2.warpAffine(
                photo, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        else:
            frames[t] = (90, 110, 130)
    return frames


def tone(seconds: float, sample_rate: int, channels: int, freq: float = 220.0) -> np.ndarray:
    """A quiet sine, planar float32 (channels, samples)."""
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    wave = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.repeat(wave[None], channels, axis=0)


def write_clip(
    path: PathLike,
    frames: Optional[np.ndarray],
    fps: int,
    audio: Optional[np.ndarray] = None,
    sample_rate: int = 44100,
    faststart: bool = False,
) -> Path:
    """Mux RGB frames (H.264) and planar float audio (AAC) into an mp4 with PyAV.

    ``frames=None`` writes an audio-only file, ``audio=None`` a silent video.
    """
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), mode="w", options=options) as container:
        video = None
        if frames is not None:
            video = container.add_stream("libx264", rate=Fraction(fps))
            video.width, video.height = frames.shape[2], frames.shape[1]
            video.pix_fmt = "yuv420p"
            video.options = {"crf": "18", "preset": "veryfast"}
        astream = None
        if audio is not None:
            layout = "mono" if audio.shape[0] == 1 else "stereo"
            astream = container.add_stream("aac", rate=sample_rate, layout=layout)
        for frame in frames if frames is not None else []:
            for packet in video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        if video is not None:
            for packet in video.encode():
                container.mux(packet)
        if astream is not None:
            _encode_audio(container, astream, audio, sample_rate)
    return path


def _encode_audio(container, stream, audio: np.ndarray, sample_rate: int, chunk: int = 1024) -> None:
    import av

    layout = "mono" if audio.shape[0] == 1 else "stereo"
    for start in range(0, audio.shape[1], chunk):
        block = np.ascontiguousarray(audio[:, start : start + chunk])
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=layout)
        frame.sample_rate = sample_rate
        frame.pts = start
        frame.time_base = Fraction(1, sample_rate)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def make_clip(
    path: PathLike,
    seconds: float = 2.0,
    fps: int = 25,
    size: int = 224,
    audio_seconds: Optional[float] = None,
    with_audio: bool = True,
    no_face: Collection[int] = (),
    seed: int = 0,
    jitter: bool = True,
    sample_rate: int = 44100,
    channels: int = 2,
    faststart: bool = False,
) -> SynthClip:
    """Write a jittered astronaut clip of ``seconds`` at ``fps`` with a tone track.

    ``audio_seconds`` makes the audio longer/shorter than the video; ``no_face`` lists
    frame indices where the face is replaced by a blank wall.
    """
    num_frames = int(round(seconds * fps))
    amount = (6.0, 0.06, 4.0) if jitter else (0.0, 0.0, 0.0)
    transforms = jitter_transforms(num_frames, size, seed, fps, *amount)
    face_frames = np.ones(num_frames, bool)
    face_frames[[i for i in no_face if 0 <= i < num_frames]] = False
    frames = render_frames(transforms, size, face_frames)
    audio = tone(seconds if audio_seconds is None else audio_seconds, sample_rate, channels) if with_audio else None
    write_clip(path, frames, fps, audio, sample_rate, faststart)
    return SynthClip(Path(path), num_frames, fps, transforms, face_frames)
