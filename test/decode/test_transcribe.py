"""usr2_transcribe end to end on generated talking-face videos, with and without an audio track."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from espnet_usr2.bin import usr2_transcribe
from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.mini_lrs3 import write_mp4
from espnet_usr2.prep.roi_errors import SkipUtterance
from espnet_usr2.prep.roi_pipeline import RoiConfig, extract_clip, extract_roi
from espnet_usr2.prep.talking_face import FaceStyle, TalkingFace

av = pytest.importorskip("av")

SIZE = 128  # small frames keep face detection fast
SECONDS = 1.6
PHONES = [("h", 0.1, 0.2), ("@", 0.2, 0.4), ("l", 0.4, 0.5), ("oU", 0.5, 0.9), ("m", 1.0, 1.2), ("a", 1.2, 1.5)]


def _drop_audio(src: Path, dst: Path) -> Path:
    """Remux the video stream of ``src`` into ``dst`` (container by suffix), without the audio."""
    with av.open(str(src)) as inp, av.open(str(dst), mode="w") as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return dst


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """talk.mp4 (a talking face with audio), silent.mkv (the same video, no audio track),
    long_audio.mp4 (audio twice as long as the video), noface.mp4 (a wall, with audio),
    noface_silent.mkv (the wall without audio), speech.flac (talk.mp4's audio alone),
    corrupt.mp4 (random bytes)."""
    root = tmp_path_factory.mktemp("transcribe")
    n_frames = int(SECONDS * 25)
    frames = list(TalkingFace(FaceStyle(), SIZE).animate(PHONES, n_frames))
    wave = (0.1 * np.random.default_rng(0).standard_normal(n_frames * 640)).astype(np.float32)
    write_mp4(root / "talk.mp4", frames, wave, SIZE)
    _drop_audio(root / "talk.mp4", root / "silent.mkv")
    write_mp4(root / "noface.mp4", [np.full((SIZE, SIZE, 3), 120, np.uint8)] * n_frames, wave, SIZE)
    _drop_audio(root / "noface.mp4", root / "noface_silent.mkv")
    soundfile.write(root / "speech.flac", wave, 16000)
    write_mp4(root / "long_audio.mp4", frames, np.concatenate([wave, wave]), SIZE)
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    for name, method in (("greedy_att", "greedy_att"), ("greedy_ctc", "greedy_ctc")):
        (root / f"{name}.yaml").write_text(f"method: {method}\n")
    return root


def test_extract_clip_audio_is_optional_only_when_asked(clips, caplog):
    cfg = RoiConfig()
    with_audio = extract_clip(clips / "talk.mp4", cfg)
    assert with_audio.audio.shape == (len(with_audio.roi.frames) * 640,) and with_audio.audio_problem is None
    for name, reason in (("silent.mkv", E.NO_AUDIO_STREAM), ("long_audio.mp4", E.AV_LENGTH_MISMATCH)):
        with pytest.raises(SkipUtterance) as skip:  # training data needs the audio
            extract_clip(clips / name, cfg)
        assert skip.value.reason == reason
        with caplog.at_level(logging.INFO, logger="espnet_usr2.prep.roi_pipeline"):
            clip = extract_clip(clips / name, cfg, audio_optional=True, progress_interval=0.0)
        assert clip.audio is None and clip.audio_problem.reason == reason
        assert np.array_equal(clip.roi.frames, with_audio.roi.frames)
    progress = [r.getMessage() for r in caplog.records if "frames (" in r.getMessage()]
    assert progress and progress[-1].startswith("long_audio.mp4: 39 frames (1.6 s of video) read in")


def _run(capsys, *args) -> tuple:
    """(exit status, stdout lines, the stderr lines the tool printed itself)."""
    status = usr2_transcribe.main([str(a) for a in args] + ["--log_level", "WARNING"])
    out, err = capsys.readouterr()
    return status, out.splitlines(), [line for line in err.splitlines() if line.startswith("usr2_transcribe:")]


def test_one_transcript_per_file_in_the_best_modality_it_allows(decode_setup, clips, capsys):
    """The default: AV for a video with audio, V without, A for an audio file -- one search each."""
    model_dir = Path(decode_setup["forced"][0]).parent
    files = [clips / "talk.mp4", clips / "silent.mkv", clips / "speech.flac"]
    status, out, err = _run(capsys, *files, "--model_dir", model_dir, "--inference_config", clips / "greedy_att.yaml")
    assert status == 0 and err == [] and out == ["talk AV: ab", "silent V: ab", "speech A: ab"]
    status, out, err = _run(capsys, files[0], "--model_dir", model_dir, "--modalities", "best", "a")
    assert status == 2 and out == [] and "stands alone" in err[0]


def test_every_modality_the_file_allows(decode_setup, clips, tmp_path, capsys):
    model_dir = Path(decode_setup["forced"][0]).parent  # config.yaml + model.pth
    status, out, err = _run(
        capsys,
        clips / "talk.mp4",
        clips / "silent.mkv",
        "--model_dir",
        model_dir,
        "--inference_config",
        clips / "greedy_att.yaml",
        "--modalities",
        "all",
        "--json",
        tmp_path / "out.json",
    )
    assert status == 0 and err == []
    assert out == ["talk V: ab", "talk A: ab", "talk AV: ab", "silent V: ab"]
    doc = json.loads((tmp_path / "out.json").read_text())
    assert doc["model"]["decode"]["method"] == "greedy_att" and doc["skipped"] == []
    assert doc["model"]["model_file"] == str(model_dir / "model.pth")
    records = doc["results"]
    assert [(r["uttid"], r["modality"], r["text"], r["has_audio"]) for r in records] == [
        ("talk", "V", "ab", True),
        ("talk", "A", "ab", True),
        ("talk", "AV", "ab", True),
        ("silent", "V", "ab", False),
    ]
    for r in records:
        assert r["num_frames"] == SECONDS * 25 and r["duration_s"] == pytest.approx(SECONDS)
        assert isinstance(r["score"], float) and r["tokens"] == ["a", "b"]
        t = r["timings"]
        assert set(t) == {"roi_s", "encode_s", "search_s", "total_s"} and t["roi_s"] > 0 and t["search_s"] > 0
        assert t["total_s"] == pytest.approx(t["roi_s"] + t["encode_s"] + t["search_s"], abs=1e-3)


def test_without_audio_track_video_is_decoded_as_with_it(decode_setup, clips, tmp_path, capsys):
    model_dir = Path(decode_setup["random"][0]).parent
    status, out, _ = _run(
        capsys,
        clips / "talk.mp4",
        clips / "silent.mkv",
        "--model_dir",
        model_dir,
        "--inference_config",
        clips / "greedy_ctc.yaml",
        "--modalities",
        "video",
        "audio",
        "--json",
        tmp_path / "out.json",
    )
    assert status == 0
    records = {(r["uttid"], r["modality"]): r for r in json.loads((tmp_path / "out.json").read_text())["results"]}
    assert sorted(records) == [("silent", "V"), ("talk", "A"), ("talk", "V")]
    assert records["silent", "V"]["score"] == records["talk", "V"]["score"]  # same frames, other container
    assert records["silent", "V"]["text"] == records["talk", "V"]["text"]


def test_bad_files_get_one_line_and_the_exit_status_says_whether_anything_was_done(
    decode_setup, clips, tmp_path, capsys
):
    model_dir = Path(decode_setup["forced"][0]).parent
    bad = [clips / "noface_silent.mkv", clips / "corrupt.mp4", clips / "absent.mp4"]
    common = ["--model_dir", model_dir, "--inference_config", clips / "greedy_att.yaml"]
    status, out, err = _run(capsys, *bad, clips / "talk.mp4", *common)
    assert status == 0 and out == ["talk AV: ab"]
    reasons = (E.NO_FACE, E.UNREADABLE_VIDEO, E.FILE_NOT_FOUND)
    assert len(err) == 3
    for line, path, reason in zip(err, bad, reasons):
        assert line.startswith(f"usr2_transcribe: {path}: not transcribed ({reason}")
    status, out, err = _run(capsys, *bad, *common, "--json", tmp_path / "bad.json")
    assert status == 1 and out == [] and len(err) == 3
    skipped = json.loads((tmp_path / "bad.json").read_text())["skipped"]
    assert [(s["uttid"], s["reason"]) for s in skipped] == list(zip(("noface_silent", "corrupt", "absent"), reasons))
    status, _, err = _run(capsys, clips / "talk.mp4", "--model_dir", tmp_path / "nowhere")
    assert status == 1 and err == [f"usr2_transcribe: error: model directory {tmp_path / 'nowhere'} does not exist"]


def test_audio_files_and_faceless_videos_are_transcribed_in_a(decode_setup, clips, capsys, caplog):
    """An audio file is A only; a video whose face is never found falls back to its audio,
    with a warning."""
    model_dir = Path(decode_setup["forced"][0]).parent
    usr2_transcribe.main(
        [
            str(clips / "speech.flac"),
            str(clips / "noface.mp4"),
            "--model_dir",
            str(model_dir),
            "--inference_config",
            str(clips / "greedy_att.yaml"),
            "--log_level",
            "WARNING",
        ]
    )
    assert capsys.readouterr().out.splitlines() == ["speech A: ab", "noface A: ab"]
    assert "no face found" in caplog.text and "transcribing its audio only" in caplog.text


def test_damaged_audio_is_concealed_or_left_out_by_the_threshold(decode_setup, clips, tmp_path, capsys):
    """Damaged audio packets cost their duration, not the file: under --max_damaged_fraction the
    audio is concealed and every modality decoded; over it the video is still transcribed."""
    from espnet_usr2.testing.damage import damage_packets

    model_dir = Path(decode_setup["forced"][0]).parent
    damaged = tmp_path / "glitch.mp4"
    assert len(damage_packets(clips / "talk.mp4", damaged, "audio", range(2, 22, 4))) == 5
    common = ["--model_dir", model_dir, "--inference_config", clips / "greedy_att.yaml", "--modalities", "all"]
    status, out, err = _run(capsys, damaged, *common, "--max_damaged_fraction", "1.0")
    assert status == 0 and err == [] and out == ["glitch V: ab", "glitch A: ab", "glitch AV: ab"]
    status, out, err = _run(capsys, damaged, *common, "--json", tmp_path / "v.json")
    assert status == 0 and out == ["glitch V: ab"]  # 5 packets of 1.6 s: over the default 0.05
    assert [r["has_audio"] for r in json.loads((tmp_path / "v.json").read_text())["results"]] == [False]


def test_precomputed_landmarks_replace_face_detection(decode_setup, clips, tmp_path, capsys, monkeypatch):
    landmarks = tmp_path / "talk.npy"
    np.save(landmarks, extract_roi(clips / "talk.mp4", RoiConfig()).landmarks)  # one row per 25 fps frame

    def no_detection(*args, **kwargs):
        raise AssertionError("face detection must not run with --landmarks")

    monkeypatch.setattr("espnet_usr2.prep.roi_pipeline.MediaPipeFaceMesh", no_detection)
    model_dir = Path(decode_setup["forced"][0]).parent
    common = ["--model_dir", model_dir, "--inference_config", clips / "greedy_att.yaml"]
    status, out, _ = _run(
        capsys, clips / "talk.mp4", clips / "silent.mkv", *common, "--landmarks", landmarks, landmarks
    )
    assert status == 0 and out == ["talk AV: ab", "silent V: ab"]
    status, _, err = _run(capsys, clips / "talk.mp4", clips / "silent.mkv", *common, "--landmarks", landmarks)
    assert status == 2 and "one per video" in err[0]


def test_a_long_recording_is_cut_at_pauses_and_written_as_subtitles(
    decode_setup, clips, speech_with_pauses, tmp_path, capsys
):
    spans = [(0.3, 1.0), (1.6, 2.4), (3.0, 3.6)]
    soundfile.write(tmp_path / "talk.wav", speech_with_pauses(spans, 4.0), 16000)
    model_dir = Path(decode_setup["forced"][0]).parent  # says "ab" for any input
    status, out, err = _run(
        capsys,
        tmp_path / "talk.wav",
        "--model_dir",
        model_dir,
        "--inference_config",
        clips / "greedy_att.yaml",
        "--max_segment",
        "1.5",
        "--output_dir",
        tmp_path / "out",
    )
    assert status == 0 and err == [] and out == ["talk A: ab ab ab"]
    assert (tmp_path / "out" / "talk.txt").read_text() == "ab ab ab\n"
    cues = [block.splitlines() for block in (tmp_path / "out" / "talk.srt").read_text().split("\n\n")]
    assert [c[0] for c in cues] == ["1", "2", "3"] and all(c[2] == "ab" for c in cues)
    doc = json.loads((tmp_path / "out" / "talk.json").read_text())
    assert doc["best_modality"] == "A"
    segments = doc["results"][0]["segments"]
    for segment, (start, end) in zip(segments, spans):
        assert abs(segment["start"] - start) < 0.25 and abs(segment["end"] - end) < 0.25
    assert (tmp_path / "out" / "talk.vtt").read_text().startswith("WEBVTT\n\n00:00:00.")


def test_a_long_video_without_audio_is_decoded_in_overlapping_windows(decode_setup, clips, tmp_path, capsys):
    model_dir = Path(decode_setup["forced"][0]).parent
    status, out, _ = _run(
        capsys,
        clips / "silent.mkv",
        "--model_dir",
        model_dir,
        "--inference_config",
        clips / "greedy_att.yaml",
        "--max_segment",
        "0.8",
        "--overlap",
        "0.2",
        "--output_dir",
        tmp_path,
        "--output_format",
        "json",
    )
    assert status == 0 and out == ["silent V: ab"]  # three windows saying "ab", joined where they agree
    segments = json.loads((tmp_path / "silent.json").read_text())["results"][0]["segments"]
    assert [(s["start"], s["end"]) for s in segments] == [(0.0, 0.7), (0.7, 1.3), (1.3, 1.6)]
    assert not (tmp_path / "silent.srt").exists()
    status, _, err = _run(
        capsys, clips / "silent.mkv", "--model_dir", model_dir, "--overlap", "0.5", "--max_segment", "0.8"
    )
    assert status == 2 and "--overlap" in err[0]


def test_utterance_ids_are_file_stems_made_unique():
    assert usr2_transcribe.uttids_for(["a/talk.mp4", "b/talk.mkv", "c/x.y.webm"]) == ["talk", "talk_2", "x.y"]


def test_module_entry_point_on_a_packed_model(packed_recipe, clips, tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "espnet_usr2.bin.usr2_transcribe",
            str(clips / "talk.mp4"),
            "--model_dir",
            str(packed_recipe["zip"]),
            "--unpack_dir",
            str(tmp_path / "unpacked"),
            "--modalities",
            "all",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["talk V: ab", "talk A: ab", "talk AV: ab"]  # the packed greedy_att config
    assert "[1/1]" in proc.stderr and "frames (1.60 s) of mouth ROIs" in proc.stderr  # progress lines
    assert (tmp_path / "unpacked" / "exp" / "usr2_tiny" / "valid.loss.best.pth").is_file()


def test_importing_the_command_prints_nothing_offline():
    """No NLTK download errors (g2p_en is imported on first use), no flash_attn notice."""
    proc = subprocess.run(
        [sys.executable, "-c", "import espnet_usr2.bin.usr2_transcribe"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and proc.stderr == "" and proc.stdout == "", proc.stderr[-2000:]


def test_g2p_en_still_works_when_a_tokenizer_uses_it():
    script = (
        "import espnet_usr2, sys; from espnet2.text.phoneme_tokenizer import Phonemizer; import g2p_en; "
        "assert 'nltk' not in sys.modules; print(g2p_en.G2p.__name__)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == "G2p", proc.stderr[-2000:]
