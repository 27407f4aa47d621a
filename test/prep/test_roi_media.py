"""Video frame-rate conversion and audio placement (PyAV decoding, no face detection)."""

from fractions import Fraction

import numpy as np
import pytest

from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.media import (
    SAMPLES_PER_FRAME,
    Audio,
    VideoInfo,
    VideoReader,
    align_audio_to_video,
    check_not_truncated,
    read_audio,
)
from espnet_usr2.prep.roi_errors import SkipUtterance
from espnet_usr2.testing.roi_synth import make_clip


class _FakeFrame:
    def __init__(self, pts: int, value: int) -> None:
        self.pts = pts
        self.value = value

    def to_ndarray(self, format: str) -> np.ndarray:
        return np.full((2, 2), self.value, np.uint8)


def _resample(fps_in: float, count: int, fps_out: int = 25):
    """Source indices chosen for each output frame of a stream at ``fps_in``."""
    time_base = Fraction(1, 90000)
    frames = [_FakeFrame(round(i * 90000 / fps_in), i) for i in range(count)]
    reader = VideoReader("unused.mp4", ("gray",), fps=fps_out)
    out = list(reader._resample(iter(frames), time_base, Fraction(1) / Fraction(fps_in)))
    assert [k for k, _, _ in out] == list(range(len(out)))
    assert all(int(images[0][0, 0]) == src for _, src, images in out)
    return [src for _, src, _ in out], reader.info


@pytest.mark.parametrize(
    "fps_in, count, expected", [(25, 50, 50), (30, 60, 50), (50, 100, 50), (15, 30, 50), (29.97, 90, 75)]
)
def test_resampling_keeps_duration(fps_in, count, expected):
    sources, info = _resample(fps_in, count)
    assert len(sources) == expected == info.num_frames
    assert sources == sorted(sources)
    # each output frame shows the source frame nearest in time
    times_out = np.arange(expected) / 25
    times_in = np.asarray(sources) / fps_in
    assert np.abs(times_out - times_in).max() <= 0.5 / fps_in + 1e-4


def test_resampling_25fps_is_identity():
    sources, _ = _resample(25, 37)
    assert sources == list(range(37))


def test_real_clips_at_25_and_30_fps(tmp_path):
    for fps in (25, 30):
        clip = make_clip(tmp_path / f"c{fps}.mp4", seconds=1.2, fps=fps, size=96, jitter=False)
        reader = VideoReader(clip.path, ("gray", "rgb24"))
        decoded = [images for _, _, images in reader.frames()]
        frames = [gray for gray, _ in decoded]
        assert decoded[0][1].shape == (96, 96, 3)
        assert len(frames) == 30 == reader.info.num_frames  # 1.2 s x 25
        assert reader.info.num_source_frames == clip.num_frames
        assert frames[0].shape == (96, 96) and frames[0].dtype == np.uint8
        audio = read_audio(clip.path)  # 44.1 kHz stereo AAC -> 16 kHz mono
        assert audio.samples.dtype == np.float32 and audio.samples.ndim == 1
        assert abs(len(audio.samples) - 1.2 * 16000) < 0.05 * 16000
        assert 0.27 < np.abs(audio.samples[2000:4000]).max() < 0.33  # the 0.3 tone: channels averaged


def test_align_audio_offsets_and_lengths():
    audio = Audio(np.ones(16000, np.float32), start_time=Fraction(1, 10))
    out = align_audio_to_video(audio, Fraction(0), num_frames=27, max_mismatch_s=0.2)
    assert len(out) == 27 * SAMPLES_PER_FRAME
    assert (out[:1600] == 0).all() and (out[1600:] == 1).all()  # starts 0.1 s late: padded
    early = Audio(np.arange(16000, dtype=np.float32), start_time=Fraction(-1, 100))
    out = align_audio_to_video(early, Fraction(0), num_frames=25, max_mismatch_s=0.2)
    assert out[0] == 160 and len(out) == 16000  # 10 ms lead dropped, then zero-padded
    with pytest.raises(SkipUtterance) as err:
        align_audio_to_video(Audio(np.ones(32000, np.float32), Fraction(0)), Fraction(0), 25, 0.2)
    assert err.value.reason == E.AV_LENGTH_MISMATCH


def test_truncation_check():
    check_not_truncated(VideoInfo(num_frames=50, declared_duration=2.1), tolerance_s=0.2)
    check_not_truncated(VideoInfo(num_frames=50, declared_duration=None), tolerance_s=0.2)
    with pytest.raises(SkipUtterance) as err:
        check_not_truncated(VideoInfo(num_frames=25, declared_duration=2.0), tolerance_s=0.2)
    assert err.value.reason == E.TRUNCATED_VIDEO
