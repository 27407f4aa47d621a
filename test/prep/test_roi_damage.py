"""Damage-tolerant decoding: damaged packets / frames are concealed in place, counted, listed.

Damage is made here, in generated clips: bytes overwritten inside one packet found with
PyAV (``packet.pos``), or the file cut short. What FFmpeg's decoders do with such a
packet is fixed by PyAV's bundled FFmpeg: the AAC decoder rejects it, the AC3 decoder
rejects a broken sync word and flags a CRC failure as a corrupt frame, the video
decoders flag a frame they had to repair as corrupt. Damage a decoder accepts (AAC with
bytes that happen to parse) cannot be seen by anyone, ffmpeg included; the offsets used
here are ones the decoders reject (checked over every fourth packet of these clips).
"""

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_usr2.bin.usr2_prepare_roi import main
from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.media import (
    SAMPLE_RATE,
    SAMPLES_PER_FRAME,
    Damage,
    LostPacket,
    VideoReader,
    align_audio_to_video,
    check_damage,
    read_audio,
)
from espnet_usr2.prep.roi_errors import SkipUtterance
from espnet_usr2.prep.roi_lists import read_damage_report, read_kaldi_map, read_skip_report
from espnet_usr2.testing.damage import cut_inside_packet, damage_packets
from espnet_usr2.testing.roi_synth import jitter_transforms, make_clip, render_frames, tone

SIZE = 160  # as test_roi_cli: small frames, face detection still finds the face
AAC_FRAME = Fraction(1024, 44100)  # samples per AAC frame / rate of make_clip's audio
AC3_FRAME = Fraction(1536, 44100)
MARGIN = 24  # 16 kHz samples the resampler's filter smears a step over


def write_avi_ac3(path: Path, seconds: float = 2.0, size: int = 96) -> Path:
    """MPEG-4 video + AC3 audio (44.1 kHz stereo) in AVI, like the damaged clip of issue 11."""
    import av

    num_frames = int(seconds * 25)
    frames = render_frames(jitter_transforms(num_frames, size, seed=5), size, np.ones(num_frames, bool))
    audio = tone(seconds, 44100, 2)
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("mpeg4", rate=25)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        stream = container.add_stream("ac3", rate=44100, layout="stereo")
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode())
        for start in range(0, audio.shape[1], 1536):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(audio[:, start : start + 1536]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts, frame.time_base = 44100, start, Fraction(1, 44100)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("roi_damage")
    return {
        "mp4": make_clip(root / "clean.mp4", seconds=2.0, size=SIZE, seed=1).path,
        "faststart": make_clip(root / "faststart.mp4", seconds=2.0, size=SIZE, seed=2, faststart=True).path,
        "avi": write_avi_ac3(root / "clean.avi"),
    }


def _at(time: Fraction) -> int:
    return int(time * SAMPLE_RATE)


def _assert_silence_in_place(
    clean: np.ndarray, damaged: np.ndarray, start: Fraction, end: Fraction, codec_frame: Fraction
) -> None:
    """Silence exactly over [start, end), the clip's length kept, the rest as decoded undamaged."""
    assert len(damaged) == len(clean)  # placed, not dropped: nothing after it moves
    assert np.abs(clean[_at(start) - 2 * MARGIN : _at(end) + 2 * MARGIN]).min() < 0.3  # a tone was there
    assert np.abs(damaged[_at(start) + MARGIN : _at(end) - MARGIN]).max() < 1e-4
    assert np.abs(damaged[_at(start) - 4 * MARGIN : _at(start) - MARGIN]).max() > 0.2  # tone up to it
    np.testing.assert_array_equal(damaged[: _at(start) - MARGIN], clean[: _at(start) - MARGIN])
    # After it the decoder needs one codec frame (overlapping transforms) to be itself again.
    after = _at(end + codec_frame) + MARGIN
    np.testing.assert_allclose(damaged[after:], clean[after:], atol=1e-3)


def test_damaged_aac_packet_becomes_silence_in_place(media, tmp_path):
    clean = read_audio(media["mp4"])
    (time,) = damage_packets(media["mp4"], tmp_path / "aac.mp4", "audio", [40])
    damaged = read_audio(tmp_path / "aac.mp4")
    assert (damaged.damage.packets, damaged.damage.seconds) == (1, pytest.approx(float(AAC_FRAME)))
    assert clean.damage == Damage() and damaged.start_time == clean.start_time
    _assert_silence_in_place(clean.samples, damaged.samples, time, time + AAC_FRAME, AAC_FRAME)
    # on the video clock: still 640 samples per video frame, the silence where it was
    samples = align_audio_to_video(damaged, Fraction(0), 50, max_mismatch_s=0.2)
    assert len(samples) == 50 * SAMPLES_PER_FRAME
    assert np.abs(samples[_at(time) + MARGIN : _at(time + AAC_FRAME) - MARGIN]).max() < 1e-4


@pytest.mark.parametrize(
    "offset, lost_frames",
    [
        (0.1, (0, 1)),  # payload: CRC mismatch, the decoder flags the frame corrupt -> that frame
        (0.0, (-1, 1)),  # sync word: the parser merges it into the packet before, which is rejected
    ],
)
def test_damaged_ac3_packet_becomes_silence_in_place(media, tmp_path, offset, lost_frames):
    clean = read_audio(media["avi"])
    (time,) = damage_packets(media["avi"], tmp_path / "ac3.avi", "audio", [20], offset=offset)
    damaged = read_audio(tmp_path / "ac3.avi")
    first, last = lost_frames
    span = (last - first) * AC3_FRAME
    assert (damaged.damage.packets, damaged.damage.seconds) == (1, pytest.approx(float(span)))
    _assert_silence_in_place(
        clean.samples, damaged.samples, time + first * AC3_FRAME, time + last * AC3_FRAME, AC3_FRAME
    )


@pytest.mark.parametrize(
    "kind, packet, b_frames",
    [("mp4", 10, 3), ("avi", 11, 0)],  # H.264 from x264 (up to 3 B-frames before a P-frame), MPEG-4 without
)
def test_damaged_video_frame_shows_the_previous_frame(media, tmp_path, kind, packet, b_frames):
    src = media[kind]
    (time,) = damage_packets(src, tmp_path / f"v.{kind}", "video", [packet], offset=0.3, nbytes=32, fill=0x55)
    clean = list(VideoReader(src).frames())
    reader = VideoReader(tmp_path / f"v.{kind}")
    damaged = list(reader.frames())
    k = int(time * 25)  # 25 fps source: output frame k is source frame k
    assert reader.info.damage.packets == 1 and reader.info.damage.seconds == pytest.approx(0.04)
    assert reader.info.num_frames == len(clean) == 50 and reader.info.num_source_frames == 50
    assert [src for _, src, _ in damaged] == [i - 1 if i == k else i for i in range(50)]
    np.testing.assert_array_equal(damaged[k][2][0], damaged[k - 1][2][0])
    assert not np.array_equal(clean[k][2][0], clean[k - 1][2][0])  # the face moves: a real repeat
    for i in range(k - b_frames):  # B-frames just before it are predicted from it too
        np.testing.assert_array_equal(damaged[i][2][0], clean[i][2][0])


class _Frame:
    def __init__(self, pts: int, corrupt: bool = False) -> None:
        self.pts, self.is_corrupt = pts, corrupt

    def to_ndarray(self, format: str) -> np.ndarray:
        return np.full((2, 2), self.pts, np.uint8)


def test_lost_and_corrupt_frames_keep_their_place_on_the_timeline():
    """Decoder output in presentation order, lost packets in decoding order (before the
    frames that leave the decoder after them): each damaged frame shows the previous good
    one (the first good one when damage comes first), later frames keep their source index."""
    tb = Fraction(1, 25)
    lost = lambda pts: LostPacket(pts * tb, tb)  # noqa: E731
    decoded = [lost(0), _Frame(1), _Frame(2, corrupt=True), lost(4), _Frame(3), _Frame(5), _Frame(6), lost(7)]
    reader = VideoReader("unused.mp4", ("gray",))
    out = list(reader._resample(iter(decoded), tb, tb))
    assert [k for k, _, _ in out] == list(range(8))
    # frame 0 (lost) shows frame 1; 2 (corrupt) shows 1; 4 (lost) shows 3; 7 (lost) shows 6
    assert [int(images[0][0, 0]) for _, _, images in out] == [1, 1, 1, 3, 3, 5, 6, 6]
    assert [src for _, src, _ in out] == [1, 1, 1, 3, 3, 5, 6, 6]
    assert reader.info.num_source_frames == 8 and reader.info.start_time == 0
    assert (reader.info.damage.packets, reader.info.damage.seconds) == (4, pytest.approx(0.16))


def test_damage_threshold_names_the_measured_fraction():
    check_damage(Damage(1, 0.1), "audio", duration_s=2.0, max_fraction=0.05)  # exactly 5 %: kept
    with pytest.raises(SkipUtterance) as skip:
        check_damage(Damage(8, 0.18576), "audio", duration_s=2.0, max_fraction=0.05)
    assert skip.value.reason == E.DAMAGED_STREAM
    assert skip.value.detail.startswith("audio: damaged fraction 0.0929 (8 packets, 0.186s of 2.000s)")


def test_truncated_mp4_mid_stream(media, tmp_path):
    """A download cut short: the packet cut in half is damage (concealed), the missing tail
    is truncation (kept within --max_truncation, else truncated_video: see the CLI test)."""
    time = cut_inside_packet(media["faststart"], tmp_path / "cut.mp4", "audio", -4)
    audio = read_audio(tmp_path / "cut.mp4")
    assert audio.damage.packets == 1 and audio.damage.seconds == pytest.approx(float(AAC_FRAME))
    # the half packet became silence after the last whole one; nothing after it was read
    assert len(audio.samples) == pytest.approx(_at(time + AAC_FRAME), abs=MARGIN)
    assert np.abs(audio.samples[_at(time) + MARGIN :]).max() < 1e-4
    assert np.abs(audio.samples[_at(time) - 4 * MARGIN : _at(time) - MARGIN]).max() > 0.2


def _kaldi(path: Path, rows) -> Path:
    path.write_text("".join(f"{k} {v}\n" for k, v in rows))
    return path


def test_cli_keeps_concealed_skips_over_threshold_and_lists_agree(media, tmp_path, capsys):
    root = tmp_path
    times = {
        "aac_one": damage_packets(media["mp4"], root / "aac_one.mp4", "audio", [40]),
        "aac_many": damage_packets(media["mp4"], root / "aac_many.mp4", "audio", range(10, 90, 10)),  # 8
        "video_one": damage_packets(media["mp4"], root / "video_one.mp4", "video", [10], 0.3, 32, 0x55),
    }
    cut_inside_packet(media["faststart"], root / "cut_tail.mp4", "audio", -4)  # ~0.1 s short
    cut_inside_packet(media["faststart"], root / "cut_half.mp4", "audio", 40)  # ~1 s short
    listing = _kaldi(
        root / "list",
        [("clean", media["mp4"])]
        + [(u, root / f"{u}.mp4") for u in ("aac_one", "aac_many", "video_one", "cut_tail", "cut_half")],
    )
    outdir = root / "out"
    for job in ("1", "2"):
        assert main(["--input", str(listing), "--outdir", str(outdir), "--nj", "2", "--job", job]) == 0
    assert main(["--input", str(listing), "--outdir", str(outdir), "--nj", "2", "--merge"]) == 0
    summary = capsys.readouterr().out

    videos, wavs = read_kaldi_map(outdir / "video.scp"), read_kaldi_map(outdir / "wav.scp")
    skipped = {s.uttid: s for s in read_skip_report(outdir / "skipped.tsv")}
    assert sorted(videos) == sorted(wavs) == ["aac_one", "clean", "cut_tail", "video_one"]
    assert {u: s.reason for u, s in skipped.items()} == {"aac_many": E.DAMAGED_STREAM, "cut_half": E.TRUNCATED_VIDEO}
    assert skipped["aac_many"].detail.startswith("audio: damaged fraction 0.0929 (8 packets, 0.186s of 2.000s)")
    assert len(videos) + len(skipped) == 6 and "6 input utterances = 4 processed" in summary
    assert "3 processed with damaged packets concealed (listed in damaged.tsv)" in summary

    lines = (outdir / "damaged.tsv").read_text().splitlines()
    assert lines == [
        "uttid\tstream\tpackets\tseconds",
        "aac_one\taudio\t1\t0.023",
        "cut_tail\taudio\t1\t0.023",
        "video_one\tvideo\t1\t0.040",
    ]
    assert set(read_damage_report(outdir / "damaged.tsv")) <= set(videos)
    frames = read_kaldi_map(outdir / "utt2num_frames")
    for uttid in videos:
        samples, rate = soundfile.read(wavs[uttid])
        assert rate == 16000 and len(samples) == int(frames[uttid]) * SAMPLES_PER_FRAME
    (time,) = times["aac_one"]
    samples, _ = soundfile.read(wavs["aac_one"])  # 16-bit: silence is exactly 0
    assert np.abs(samples[_at(time) + MARGIN : _at(time + AAC_FRAME) - MARGIN]).max() == 0.0

    # a looser threshold keeps the damaged stream, listed with all its packets
    loose = root / "loose"
    assert (
        main(
            [
                "--input",
                str(_kaldi(root / "one", [("aac_many", root / "aac_many.mp4")])),
                "--outdir",
                str(loose),
                "--max_damaged_fraction",
                "0.1",
            ]
        )
        == 0
    )
    assert (loose / "damaged.tsv").read_text().splitlines()[1:] == ["aac_many\taudio\t8\t0.186"]
    assert read_skip_report(loose / "skipped.tsv") == []
