"""Decoding talking-face videos with PyAV: video resampled to 25 fps, audio to 16 kHz mono.

Frame-rate conversion works on presentation timestamps, not frame counts: output frame k
(at time k/25 s from the first video frame) is the decoded frame whose timestamp is
nearest to it. This is what ``ffmpeg -vf fps=25`` does, handles variable frame rates,
and leaves 25 fps input untouched (frame k maps to frame k).

Audio is placed on the video's clock: if the audio stream starts later than the first
video frame it is padded with silence at the front, if earlier its lead is dropped, so
sample ``640 * k`` is the audio at video frame ``k``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Tuple, Union

import numpy as np

from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.roi_errors import SkipUtterance

PathLike = Union[str, Path]
TARGET_FPS = 25
SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // TARGET_FPS  # 640


def check_media_file(path: PathLike) -> Path:
    """Fail early, with a precise reason, on a path that cannot be a video."""
    path = Path(path)
    if not path.is_file():
        raise SkipUtterance(E.FILE_NOT_FOUND, str(path))
    if path.stat().st_size == 0:
        raise SkipUtterance(E.EMPTY_FILE, "0 bytes")
    return path


def require_streams(path: PathLike, audio: bool = True) -> bool:
    """Cheap check (no decoding) that the file has a video and, if asked, an audio stream.

    Returns whether the file has an audio stream (always True when ``audio`` is required).
    """
    with _open_container(check_media_file(path)) as container:
        if not container.streams.video:
            raise SkipUtterance(E.NO_VIDEO_STREAM, "the file has no video stream")
        if audio and not container.streams.audio:
            raise SkipUtterance(E.NO_AUDIO_STREAM, "the file has no audio track")
        return bool(container.streams.audio)


def _open_container(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as err:
        raise SkipUtterance(E.UNREADABLE_VIDEO, _one_line(err)) from err


def _one_line(err: BaseException) -> str:
    """Exception text safe for a TSV cell."""
    return " ".join(f"{type(err).__name__}: {err}".split())


def _declared_duration(container, stream) -> Optional[float]:
    """The stream's duration from the file's header (mp4), else the container's (mkv/webm).

    Matroska files usually carry only the container duration; it may include a slightly
    longer audio track, which the truncation tolerance absorbs.
    """
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE units
    return None


def _round_half_up(x: Fraction) -> int:
    return math.floor(x + Fraction(1, 2))


@dataclass
class VideoInfo:
    """What decoding learnt about the video stream (filled in while iterating)."""

    start_time: Fraction = Fraction(0)  # timestamp of the first frame, container clock (s)
    source_fps: float = 0.0  # nominal rate of the stream (0 if unknown)
    num_source_frames: int = 0  # frames decoded from the file
    num_frames: int = 0  # frames produced at the target rate
    declared_duration: Optional[float] = None  # what the container says the stream lasts (s)


def check_not_truncated(info: VideoInfo, tolerance_s: float, fps: int = TARGET_FPS) -> None:
    """Raise ``truncated_video`` when fewer frames decode than the container promises.

    A file cut short after its index (mp4 "faststart", mkv) often decodes without an
    error, just shorter; its audio is cut too, so the length check alone misses it.
    """
    if info.declared_duration is None:
        return
    decoded = info.num_frames / fps
    if decoded < info.declared_duration - tolerance_s:
        raise SkipUtterance(
            E.TRUNCATED_VIDEO, f"decoded {decoded:.3f}s of a video stream declared as {info.declared_duration:.3f}s"
        )


class VideoReader:
    """Iterate a video's frames resampled to ``fps`` (default 25).

    ``frames()`` yields ``(k, source_index, images)``: ``images`` holds the frame in each
    requested pixel format, ``uint8`` (``rgb24`` -> (H, W, 3), ``gray`` -> (H, W)). Gray
    comes from the decoder's luma, so crops are identical whether or not RGB is also
    requested. After the iteration :attr:`info` holds the source frame count, the start
    time and the number of output frames. Bad input raises :class:`SkipUtterance`.
    """

    def __init__(
        self, path: PathLike, pix_fmts: Tuple[str, ...] = ("gray",), fps: int = TARGET_FPS, threads: int = 1
    ) -> None:
        if not pix_fmts or any(f not in ("rgb24", "gray") for f in pix_fmts):
            raise ValueError(f"pix_fmts must be rgb24 and/or gray, got {pix_fmts!r}")
        self.path = Path(path)
        self.pix_fmts = tuple(pix_fmts)
        self.fps = fps
        self.threads = threads
        self.info = VideoInfo()

    def frames(self) -> Iterator[Tuple[int, int, Tuple[np.ndarray, ...]]]:
        import av

        path = check_media_file(self.path)
        with _open_container(path) as container:
            if not container.streams.video:
                raise SkipUtterance(E.NO_VIDEO_STREAM, "the file has no video stream")
            stream = container.streams.video[0]
            # One decoder thread by default: throughput comes from running jobs in
            # parallel, and frame threading only adds latency and memory per job.
            stream.codec_context.thread_count = self.threads
            nominal = stream.average_rate or stream.guessed_rate or stream.base_rate
            self.info.source_fps = float(nominal) if nominal else 0.0
            self.info.declared_duration = _declared_duration(container, stream)
            frame_dur = Fraction(1) / Fraction(nominal) if nominal else Fraction(1, self.fps)
            try:
                yield from self._resample(container.decode(stream), stream.time_base, frame_dur)
            except av.FFmpegError as err:
                raise SkipUtterance(E.DECODE_ERROR, f"video: {_one_line(err)}") from err
        if self.info.num_source_frames == 0:
            raise SkipUtterance(E.NO_VIDEO_FRAMES, "the video stream has no decodable frame")

    def _resample(
        self, decoded, time_base: Optional[Fraction], frame_dur: Fraction
    ) -> Iterator[Tuple[int, int, Tuple[np.ndarray, ...]]]:
        """Nearest-timestamp resampling to ``self.fps``; decoded frames are converted lazily."""
        step = Fraction(1, self.fps)
        t0: Optional[Fraction] = None
        prev = None  # [timestamp relative to t0, source index, av frame, cached ndarray]
        k = 0
        for src_index, frame in enumerate(decoded):
            ts = self._timestamp(frame, src_index, time_base, frame_dur)
            if t0 is None:
                t0 = ts
                self.info.start_time = ts
            ts -= t0
            if prev is not None:
                if ts <= prev[0]:  # broken/duplicate timestamps: assume the nominal rate
                    ts = prev[0] + frame_dur
                boundary = (prev[0] + ts) / 2  # frames before this are nearer to prev
                while k * step < boundary:
                    yield k, prev[1], self._pixels(prev)
                    k += 1
            prev = [ts, src_index, frame, None]
            self.info.num_source_frames = src_index + 1
        if prev is None:
            return
        # The clip lasts until the last frame's end; always keep at least one frame.
        total = max(k, _round_half_up((prev[0] + frame_dur) / step), 1)
        while k < total:
            yield k, prev[1], self._pixels(prev)
            k += 1
        self.info.num_frames = k

    @staticmethod
    def _timestamp(frame, src_index: int, time_base: Optional[Fraction], frame_dur: Fraction) -> Fraction:
        if frame.pts is not None and time_base is not None:
            return Fraction(frame.pts) * Fraction(time_base)
        return src_index * frame_dur

    def _pixels(self, entry: list) -> Tuple[np.ndarray, ...]:
        # A source frame can be emitted twice when upsampling (e.g. 15 -> 25 fps):
        # convert it once.
        if entry[3] is None:
            entry[3] = tuple(entry[2].to_ndarray(format=f) for f in self.pix_fmts)
            entry[2] = None
        return entry[3]


@dataclass
class Audio:
    """Mono float32 samples at :data:`SAMPLE_RATE` and the stream start (container clock)."""

    samples: np.ndarray
    start_time: Fraction


def read_audio(path: PathLike, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode the first audio stream, downmixed to mono and resampled to ``sample_rate``."""
    import av

    path = check_media_file(path)
    chunks = []
    start: Optional[Fraction] = None
    with _open_container(path) as container:
        if not container.streams.audio:
            raise SkipUtterance(E.NO_AUDIO_STREAM, "the file has no audio track")
        stream = container.streams.audio[0]
        # Resample with the channel layout kept, then average the channels ourselves:
        # swresample's stereo->mono downmix adds the channels at -3 dB (a gain of 1.41
        # for a centred voice), which can clip; a plain mean cannot.
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        try:
            for frame in container.decode(stream):
                if start is None and frame.pts is not None and frame.time_base is not None:
                    start = Fraction(frame.pts) * Fraction(frame.time_base)
                chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(None))
        except av.FFmpegError as err:
            raise SkipUtterance(E.DECODE_ERROR, f"audio: {_one_line(err)}") from err
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        raise SkipUtterance(E.EMPTY_AUDIO, "the audio track has no samples")
    return Audio(samples=samples, start_time=start if start is not None else Fraction(0))


def align_audio_to_video(
    audio: Audio,
    video_start: Fraction,
    num_frames: int,
    max_mismatch_s: float,
    samples_per_frame: int = SAMPLES_PER_FRAME,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """Put audio on the video clock and make it exactly ``num_frames * samples_per_frame`` long.

    Raises ``av_length_mismatch`` when, after the start offset is applied, the audio is
    longer or shorter than the video by more than ``max_mismatch_s`` seconds: such a
    pair is truncated or not the same recording, and padding would hide it.
    """
    offset = _round_half_up((audio.start_time - video_start) * sample_rate)
    samples = audio.samples
    if offset > 0:
        samples = np.concatenate([np.zeros(offset, np.float32), samples])
    elif offset < 0:
        samples = samples[-offset:]
    target = num_frames * samples_per_frame
    diff_s = (len(samples) - target) / sample_rate
    if abs(diff_s) > max_mismatch_s:
        raise SkipUtterance(
            E.AV_LENGTH_MISMATCH,
            f"audio {len(samples) / sample_rate:.3f}s vs video {target / sample_rate:.3f}s "
            f"(difference {diff_s:+.3f}s > {max_mismatch_s}s)",
        )
    if len(samples) >= target:
        return samples[:target]
    return np.concatenate([samples, np.zeros(target - len(samples), np.float32)])


def write_wav(path: PathLike, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write 16-bit PCM mono; written to a temporary name first so a crash leaves no half file."""
    import soundfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.wav")
    soundfile.write(str(tmp), np.clip(samples, -1.0, 1.0), sample_rate, subtype="PCM_16")
    os.replace(tmp, path)
    return path
