"""Single-stream utterances: a video without an audio track becomes video-only, an audio file
audio-only (--allow_single_stream), a face-less video keeps its audio (--no_face audio_only);
without the options every output stays as for two-stream corpora."""

import math

import numpy as np
import pytest
import soundfile

from espnet_usr2.bin.usr2_prepare_roi import main
from espnet_usr2.data.roi_io import load_roi
from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.media import SAMPLES_PER_FRAME
from espnet_usr2.prep.roi_lists import AUDIO_ONLY, VIDEO_ONLY, read_kaldi_map, read_skip_report, read_uttid_list
from espnet_usr2.testing.roi_synth import make_clip, tone

AUDIO_SECONDS = {"wav": 1.3, "flac": 0.9, "mp3": 1.1, "m4a": 1.2, "noface": 1.0}


def _encode(path, codec, seconds, rate, channels, cover=False):
    """An audio-only file in the container its suffix names (mp3, m4a), a 220 Hz tone;
    ``cover``: with album art (a one-picture video stream marked as an attached picture)."""
    import av
    from av.stream import Disposition

    samples = tone(seconds, rate, channels).astype(np.float32)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        if cover:
            art = container.add_stream("mjpeg", rate=1)
            art.width, art.height, art.pix_fmt = 64, 64, "yuvj420p"
            art.disposition = Disposition.attached_pic
            picture = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 200, np.uint8), format="rgb24")
            for packet in [*art.encode(picture), *art.encode()]:
                container.mux(packet)
        for start in range(0, samples.shape[1], 1152):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[:, start : start + 1152]), format="fltp", layout=layout
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("single")
    files = {
        "av": make_clip(root / "av.mp4", seconds=1.0, size=128, seed=1).path,
        "silent": make_clip(root / "silent.mp4", seconds=1.0, size=128, seed=2, with_audio=False).path,
        "noface": make_clip(root / "noface.mp4", seconds=1.0, size=128, seed=3, no_face=range(25)).path,
        "junk": root / "junk.mp4",
        "wav": root / "a.wav",
        "flac": root / "a.flac",
        "mp3": _encode(root / "a.mp3", "libmp3lame", AUDIO_SECONDS["mp3"], 44100, 2, cover=True),
        "m4a": _encode(root / "a.m4a", "aac", AUDIO_SECONDS["m4a"], 48000, 1),
    }
    files["junk"].write_text("this is not a video\n" * 50)
    soundfile.write(str(files["wav"]), tone(AUDIO_SECONDS["wav"], 44100, 2).T, 44100)
    soundfile.write(str(files["flac"]), tone(AUDIO_SECONDS["flac"], 22050, 1)[0], 22050, subtype="PCM_16")
    listing = root / "list"
    listing.write_text("".join(f"{u} {p}\n" for u, p in files.items()))
    text = root / "text"
    text.write_text("".join(f"{u} SAY {u.upper()}\n" for u in files))
    return listing, text


def _run(listing, text, outdir, *options, nj=2):
    args = ["--input", str(listing), "--text", str(text), "--outdir", str(outdir), "--nj", str(nj), *options]
    for job in range(1, nj + 1):
        assert main(args + ["--job", str(job)]) == 0
    assert main(args + ["--merge"]) == 0


def _reasons(outdir):
    return {s.uttid: s.reason for s in read_skip_report(outdir / "skipped.tsv")}


def test_without_the_options_single_stream_inputs_are_skipped_as_before(corpus, tmp_path):
    listing, text = corpus
    out = tmp_path / "out"
    _run(listing, text, out)
    assert list(read_kaldi_map(out / "video.scp")) == list(read_kaldi_map(out / "wav.scp")) == ["av"]
    # (the mp3's cover picture is searched for a face, as before: no_face)
    assert _reasons(out) == {
        "silent": E.NO_AUDIO_STREAM,
        "noface": E.NO_FACE,
        "junk": E.UNREADABLE_VIDEO,
        "mp3": E.NO_FACE,
        **{k: E.NO_VIDEO_STREAM for k in ("wav", "flac", "m4a")},
    }
    assert not (out / VIDEO_ONLY).exists() and not (out / AUDIO_ONLY).exists()

    # the same directory run again with the options: the journal's results under the
    # other settings are not reused, every list follows the new settings
    _run(listing, text, out, "--allow_single_stream", "true", "--no_face", "audio_only")
    _check_single_stream(out)


def _check_single_stream(out):
    videos, wavs = read_kaldi_map(out / "video.scp"), read_kaldi_map(out / "wav.scp")
    frames = {u: int(n) for u, n in read_kaldi_map(out / "utt2num_frames").items()}
    assert sorted(videos) == ["av", "silent"]
    assert sorted(wavs) == ["av", "flac", "m4a", "mp3", "noface", "wav"]
    assert read_uttid_list(out / VIDEO_ONLY) == ["silent"]
    assert read_uttid_list(out / AUDIO_ONLY) == ["flac", "m4a", "mp3", "noface", "wav"]
    assert _reasons(out) == {"junk": E.UNREADABLE_VIDEO}  # still skipped, with its reason
    assert len(frames) + len(_reasons(out)) == 8  # every input in a list or in skipped.tsv
    assert sorted(read_kaldi_map(out / "text")) == sorted(frames)
    assert load_roi(videos["silent"]).shape == (25, 96, 96) and frames["silent"] == 25
    for uttid, seconds in AUDIO_SECONDS.items():
        info = soundfile.info(wavs[uttid])
        assert (info.samplerate, info.channels) == (16000, 1)
        samples, _ = soundfile.read(wavs[uttid])
        # the whole track, resampled (codec priming / padding: a few ms)
        assert len(samples) / 16000 == pytest.approx(seconds, abs=0.06), uttid
        assert np.sqrt(np.mean(samples[1600:-1600] ** 2)) > 0.1, uttid  # the tone, not silence
        assert frames[uttid] == math.ceil(len(samples) / SAMPLES_PER_FRAME)


def test_single_stream_utterances_and_counts(corpus, tmp_path, capsys):
    listing, text = corpus
    out = tmp_path / "out"
    _run(listing, text, out, "--allow_single_stream", "true", nj=1)
    assert _reasons(out) == {"junk": E.UNREADABLE_VIDEO, "noface": E.NO_FACE}  # no_face: skip by default
    assert read_uttid_list(out / AUDIO_ONLY) == ["flac", "m4a", "mp3", "wav"]
    summary = capsys.readouterr().out
    assert "8 input utterances = 6 processed" in summary
    assert "1 processed video-only: no audio track (listed in video_only.list)" in summary
    assert "4 processed audio-only (listed in audio_only.list)" in summary

    # --no_face audio_only alone keeps the face-less video's audio; no-audio videos stay skipped
    only = tmp_path / "no_face"
    _run(listing, text, only, "--no_face", "audio_only", nj=1)
    assert read_uttid_list(only / AUDIO_ONLY) == ["noface"] and not (only / VIDEO_ONLY).exists()
    assert _reasons(only)["silent"] == E.NO_AUDIO_STREAM and _reasons(only)["wav"] == E.NO_VIDEO_STREAM


def test_bad_no_face_value_is_named():
    with pytest.raises(ValueError, match="no_face must be skip or audio_only, got 'keep'"):
        main(["--input", "x", "--outdir", "y", "--no_face", "keep"])
