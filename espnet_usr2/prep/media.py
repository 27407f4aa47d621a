"""Decoding talking-face videos with PyAV: video resampled to 25 fps, audio to 16 kHz mono.

Frame-rate conversion works on presentation timestamps, not frame counts: output frame k
(at time k/25 s from the first video frame) is the decoded frame whose timestamp is
nearest to it. This is what ``ffmpeg -vf fps=25`` does, handles variable frame rates,
and leaves 25 fps input untouched (frame k maps to frame k).

Audio is placed on the video's clock: if the audio stream starts later than the first
video frame it is padded with silence at the front, if earlier its lead is dropped, so
sample ``640 * k`` is the audio at video frame ``k``.

Decoding tolerates damage, as ``ffmpeg -i clip out.wav`` does: a packet the decoder
rejects, or a frame it flags as corrupt, is concealed where its timestamp puts it --
audio by silence for its duration, video by the previous frame (the first good frame
for damage before it) -- so the two streams stay in sync. What was concealed is counted
per stream (:class:`Damage`); :func:`check_damage` decides whether it is too much.
"""

from __future__ import annotations

import bisect
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, Union

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


def probe_streams(path: PathLike) -> Tuple[bool, bool]:
    """(has a video stream, has an audio stream), without decoding.

    A cover picture (mp3 / m4a artwork: a video stream of one attached picture) is not a
    video: such a file is audio.
    """
    from av.stream import Disposition

    with _open_container(check_media_file(path)) as container:
        videos = [s for s in container.streams.video if not s.disposition & Disposition.attached_pic]
        return bool(videos), bool(container.streams.audio)


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
class Damage:
    """Damaged packets / frames of one stream that were concealed, and the time they covered."""

    packets: int = 0
    seconds: float = 0.0

    def add(self, seconds: float, packets: int = 1) -> None:
        self.packets += packets
        self.seconds += float(seconds)


def check_damage(damage: Damage, stream: str, duration_s: float, max_fraction: float) -> None:
    """Raise ``damaged_stream`` when concealment covers more than ``max_fraction`` of the clip.

    A few concealed packets leave the words audible (or visible); beyond that the
    transcript no longer matches what the model is given, so the utterance goes.
    """
    fraction = damage.seconds / duration_s if duration_s > 0 else float(damage.packets > 0)
    if fraction > max_fraction:
        raise SkipUtterance(
            E.DAMAGED_STREAM,
            f"{stream}: damaged fraction {fraction:.4f} ({damage.packets} packets, {damage.seconds:.3f}s "
            f"of {duration_s:.3f}s) > max_damaged_fraction {max_fraction}",
        )


@dataclass(frozen=True)
class LostPacket:
    """A packet the decoder rejected: where it was (s, stream clock; None if unknown) and how long."""

    time: Optional[Fraction]
    duration: Optional[Fraction]


def _packet_time(value: Optional[int], time_base: Optional[Fraction]) -> Optional[Fraction]:
    if value is None or time_base is None:
        return None
    return Fraction(value) * Fraction(time_base)


def decode_tolerant(container, stream) -> Iterator[object]:
    """Decode ``stream`` packet by packet: frames, and a :class:`LostPacket` for each packet
    the decoder rejects, instead of ending on the first error as ``container.decode`` does.

    Damage in the container itself (the demuxer fails) still raises ``av.FFmpegError``.
    """
    import av

    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            time_base = packet.time_base
            yield LostPacket(_packet_time(packet.pts, time_base), _packet_time(packet.duration or None, time_base))
            continue
        yield from frames


@dataclass
class VideoInfo:
    """What decoding learnt about the video stream (filled in while iterating)."""

    start_time: Fraction = Fraction(0)  # timestamp of the first frame, container clock (s)
    source_fps: float = 0.0  # nominal rate of the stream (0 if unknown)
    num_source_frames: int = 0  # frames decoded from the file
    num_frames: int = 0  # frames produced at the target rate
    declared_duration: Optional[float] = None  # what the container says the stream lasts (s)
    damage: Damage = field(default_factory=Damage)  # lost packets / corrupt frames, concealed


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


class _Pixels:
    """A decoded frame converted to the requested pixel formats on first use, once.

    A source frame can be shown by several output frames (upsampling, concealment):
    it is converted once, and not at all if no output frame shows it.
    """

    __slots__ = ("frame", "images")

    def __init__(self, frame) -> None:
        self.frame = frame
        self.images: Optional[Tuple[np.ndarray, ...]] = None

    def get(self, pix_fmts: Tuple[str, ...]) -> Tuple[np.ndarray, ...]:
        if self.images is None:
            self.images = tuple(self.frame.to_ndarray(format=f) for f in pix_fmts)
            self.frame = None
        return self.images


class VideoReader:
    """Iterate a video's frames resampled to ``fps`` (default 25).

    ``frames()`` yields ``(k, source_index, images)``: ``images`` holds the frame in each
    requested pixel format, ``uint8`` (``rgb24`` -> (H, W, 3), ``gray`` -> (H, W)). Gray
    comes from the decoder's luma, so crops are identical whether or not RGB is also
    requested. After the iteration :attr:`info` holds the source frame count, the start
    time, the number of output frames and the concealed damage. Bad input raises
    :class:`SkipUtterance`.

    A damaged frame (a packet the decoder rejects, or a frame it flags as corrupt) keeps
    its place on the timeline and shows the previous good frame -- ``source_index`` is
    then that frame's, so precomputed landmarks stay those of the pixels shown -- while
    later frames keep their own source index.
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
                yield from self._resample(decode_tolerant(container, stream), stream.time_base, frame_dur)
            except av.FFmpegError as err:
                raise SkipUtterance(E.DECODE_ERROR, f"video: {_one_line(err)}") from err
        if self.info.num_source_frames == 0 or self.info.num_frames == 0:
            detail = "the video stream has no decodable frame"
            if self.info.damage.packets:
                detail += f" ({self.info.damage.packets} damaged packets)"
            raise SkipUtterance(E.NO_VIDEO_FRAMES, detail)

    def _timeline(
        self, decoded: Iterable[object], time_base: Optional[Fraction], frame_dur: Fraction
    ) -> Iterator[Tuple[Fraction, int, Optional[object]]]:
        """Decoded frames and lost packets -> ``(timestamp, source index, frame)`` in time order.

        ``frame`` is None for a damaged source frame (to be concealed). A lost packet is
        placed at its timestamp once the decoder has passed it (frames leave the decoder
        in presentation order, packets enter it in decoding order); one whose place is
        unknown or already passed is only counted.
        """
        damage = self.info.damage
        lost: List[Fraction] = []  # timestamps of lost packets not placed yet, sorted
        last: Optional[Fraction] = None
        src = 0
        for item in decoded:
            if isinstance(item, LostPacket):
                damage.add(item.duration or frame_dur)
                if item.time is not None:
                    bisect.insort(lost, item.time)
                continue
            ts = self._timestamp(item, src, time_base, frame_dur)
            while lost and lost[0] < ts:
                t = lost.pop(0)
                if last is None or t > last:
                    yield t, src, None
                    src, last = src + 1, t
            if getattr(item, "is_corrupt", False):
                damage.add(frame_dur)
                item = None
            yield ts, src, item
            src, last = src + 1, ts
        for t in lost:
            if last is not None and t > last:
                yield t, src, None
                src, last = src + 1, t

    def _resample(
        self, decoded: Iterable[object], time_base: Optional[Fraction], frame_dur: Fraction
    ) -> Iterator[Tuple[int, int, Tuple[np.ndarray, ...]]]:
        """Nearest-timestamp resampling to ``self.fps``; decoded frames are converted lazily."""
        step = Fraction(1, self.fps)
        t0: Optional[Fraction] = None
        prev: Optional[Tuple[Fraction, int, _Pixels]] = None  # (time from t0, source index, pixels)
        leading: List[Fraction] = []  # damaged frames before the first good one: shown as it
        k = 0
        for ts, src_index, frame in self._timeline(decoded, time_base, frame_dur):
            self.info.num_source_frames = src_index + 1
            if frame is None and prev is None:
                leading.append(ts)
                continue
            if t0 is None:
                t0 = leading[0] if leading else ts
                self.info.start_time = t0
            ts -= t0
            current = (ts, src_index, _Pixels(frame)) if frame is not None else (ts, prev[1], prev[2])
            if prev is None and leading:  # the first good frame also stands for the damaged ones before it
                prev = (Fraction(0), src_index, current[2])
            if prev is not None:
                if ts <= prev[0]:  # broken/duplicate timestamps: assume the nominal rate
                    ts = prev[0] + frame_dur
                    current = (ts,) + current[1:]
                boundary = (prev[0] + ts) / 2  # frames before this are nearer to prev
                while k * step < boundary:
                    yield k, prev[1], prev[2].get(self.pix_fmts)
                    k += 1
            prev = current
        if prev is None:
            return
        # The clip lasts until the last frame's end; always keep at least one frame.
        total = max(k, _round_half_up((prev[0] + frame_dur) / step), 1)
        while k < total:
            yield k, prev[1], prev[2].get(self.pix_fmts)
            k += 1
        self.info.num_frames = k

    @staticmethod
    def _timestamp(frame, src_index: int, time_base: Optional[Fraction], frame_dur: Fraction) -> Fraction:
        if frame.pts is not None and time_base is not None:
            return Fraction(frame.pts) * Fraction(time_base)
        return src_index * frame_dur


@dataclass
class Audio:
    """Mono float32 samples at :data:`SAMPLE_RATE`, the stream start (container clock) and
    the concealed damage."""

    samples: np.ndarray
    start_time: Fraction
    damage: Damage = field(default_factory=Damage)


def _frame_seconds(frame) -> Fraction:
    return Fraction(frame.samples, frame.sample_rate)


def _silence(like, seconds: Fraction, at: Optional[Fraction]):
    """A silent audio frame of ``seconds`` in the format, layout and rate of ``like``, at ``at``."""
    import av

    samples = _round_half_up(seconds * like.sample_rate)
    channels = len(like.layout.channels)
    shape = (channels, samples) if like.format.is_planar else (1, samples * channels)
    dtype = like.to_ndarray().dtype  # numpy's view of the sample format (s16, flt, ...)
    frame = av.AudioFrame.from_ndarray(np.zeros(shape, dtype), format=like.format.name, layout=like.layout.name)
    frame.sample_rate = like.sample_rate
    if at is not None and like.time_base is not None:
        frame.time_base = like.time_base
        frame.pts = _round_half_up(at / Fraction(like.time_base))
    return frame


def _lost_span(lost: List[LostPacket], end: Optional[Fraction], start: Optional[Fraction], last) -> Fraction:
    """How long the packets lost between two good frames lasted.

    By timestamps when both are known (the gap between the frame before and the frame
    after; a parser may have merged a damaged packet with its neighbour, so the packet's
    own duration can be short). Rounded to whole codec frames when it is within one
    tick of the container clock of them (mkv keeps milliseconds). Else the packets'
    declared durations, else one codec frame each.
    """
    if end is not None and start is not None and last is not None:
        gap = max(start - end, Fraction(0))
        frame_len = _frame_seconds(last)
        whole = round(gap / frame_len)
        tick = Fraction(last.time_base) if last.time_base is not None else Fraction(0)
        return whole * frame_len if whole >= 1 and abs(gap - whole * frame_len) <= tick else gap
    fallback = _frame_seconds(last) if last is not None else Fraction(0)
    return sum((p.duration if p.duration else fallback for p in lost), Fraction(0))


def _conceal_audio(decoded: Iterable[object], damage: Damage) -> Iterator[object]:
    """Decoded audio frames, with silence for lost packets and in place of corrupt frames.

    Lost packets before the first good frame are only counted: the stream then starts
    later, and :func:`align_audio_to_video` pads the front with silence by timestamps.
    """
    last = None  # the last frame passed on: the silence takes its format and rate
    end: Optional[Fraction] = None  # where it ended (s, stream clock)
    lost: List[LostPacket] = []
    for item in decoded:
        if isinstance(item, LostPacket):
            lost.append(item)
            continue
        start = _packet_time(item.pts, item.time_base)
        if lost:
            span = _lost_span(lost, end, start, last)
            damage.add(span, len(lost))
            if last is not None and span > 0:
                yield _silence(last, span, end)
            lost = []
        if item.is_corrupt:
            damage.add(_frame_seconds(item))
            item = _silence(item, _frame_seconds(item), start)
        yield item
        last = item
        end = (start if start is not None else (end or Fraction(0))) + _frame_seconds(item)
    if lost:
        span = _lost_span(lost, None, None, last)
        damage.add(span, len(lost))
        if last is not None and span > 0:
            yield _silence(last, span, end)


def read_audio(path: PathLike, sample_rate: int = SAMPLE_RATE) -> Audio:
    """Decode the first audio stream, downmixed to mono and resampled to ``sample_rate``;
    damaged packets / frames become silence of their duration, at their place."""
    import av

    path = check_media_file(path)
    chunks = []
    start: Optional[Fraction] = None
    damage = Damage()
    with _open_container(path) as container:
        if not container.streams.audio:
            raise SkipUtterance(E.NO_AUDIO_STREAM, "the file has no audio track")
        stream = container.streams.audio[0]
        # Resample with the channel layout kept, then average the channels ourselves:
        # swresample's stereo->mono downmix adds the channels at -3 dB (a gain of 1.41
        # for a centred voice), which can clip; a plain mean cannot.
        resampler = av.AudioResampler(format="fltp", rate=sample_rate)
        try:
            for frame in _conceal_audio(decode_tolerant(container, stream), damage):
                if start is None and frame.pts is not None and frame.time_base is not None:
                    start = Fraction(frame.pts) * Fraction(frame.time_base)
                chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray().mean(axis=0) for f in resampler.resample(None))
        except av.FFmpegError as err:
            raise SkipUtterance(E.DECODE_ERROR, f"audio: {_one_line(err)}") from err
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if samples.size == 0:
        detail = "the audio track has no samples"
        if damage.packets:
            detail += f" ({damage.packets} damaged packets)"
        raise SkipUtterance(E.EMPTY_AUDIO, detail)
    return Audio(samples=samples, start_time=start if start is not None else Fraction(0), damage=damage)


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
