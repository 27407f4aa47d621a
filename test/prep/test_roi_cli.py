"""End to end through the CLI: good and bad inputs, sharding, skip report, merge."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from espnet_usr2.bin.usr2_prepare_roi import main
from espnet_usr2.data.roi_io import load_roi
from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.landmarks import save_landmarks_pickle
from espnet_usr2.prep.roi_lists import read_kaldi_map, read_skip_report
from espnet_usr2.prep.roi_pipeline import extract_roi
from espnet_usr2.testing.roi_synth import make_clip, tone, write_clip

SIZE = 160  # small frames keep face detection fast; the face is still ~50 px across the eyes


def _zero_duration_mp4(path):
    """What ``ffmpeg -t 0`` leaves: a valid mp4 whose streams never got a packet."""
    import av

    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width = video.height = 64
        container.add_stream("aac", rate=16000)
        container.start_encoding()
    return path


def _remux(src, dst):
    """Copy the streams of ``src`` into another container (by suffix) without re-encoding."""
    import av

    with av.open(str(src)) as inp, av.open(str(dst), mode="w") as out:
        mapping = {s.index: out.add_stream_from_template(s) for s in inp.streams}
        for packet in inp.demux():
            if packet.dts is not None:
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
    return dst


def _kaldi(path, rows):
    path.write_text("".join(f"{k} {v}".rstrip() + "\n" for k, v in rows))
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A list mixing good clips with every kind of bad input, and the reason each should get."""
    root = tmp_path_factory.mktemp("roi_cli")
    good = make_clip(root / "good25.mp4", seconds=2.0, size=SIZE, seed=1).path
    make_clip(root / "good30.mp4", seconds=2.0, fps=30, size=SIZE, seed=2)
    make_clip(root / "gap_short.mp4", seconds=2.0, size=SIZE, no_face=range(10, 15), seed=3)
    make_clip(root / "gap_long.mp4", seconds=2.0, size=SIZE, no_face=range(10, 40), seed=4)
    make_clip(root / "no_face.mp4", seconds=1.0, size=SIZE, no_face=range(25), seed=5)
    make_clip(root / "no_audio.mp4", seconds=1.0, size=SIZE, with_audio=False, seed=6)
    make_clip(root / "mismatch.mp4", seconds=1.0, size=SIZE, audio_seconds=2.0, seed=7)
    (root / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    mkv = _remux(good, root / "full.mkv").read_bytes()  # mkv: decodes quietly when cut short
    (root / "truncated.mkv").write_bytes(mkv[: int(len(mkv) * 0.6)])
    (root / "zero.mp4").write_bytes(b"")
    _zero_duration_mp4(root / "zero_duration.mp4")
    write_clip(root / "audio_only.mp4", None, 25, tone(1.0, 44100, 2))
    expected = {  # uttid -> (file, reason or None for processed)
        "good25": ("good25.mp4", None),
        "good30": ("good30.mp4", None),
        "gap_short": ("gap_short.mp4", None),
        "gap_long": ("gap_long.mp4", E.FACE_GAP_TOO_LONG),
        "no_face": ("no_face.mp4", E.NO_FACE),
        "no_audio": ("no_audio.mp4", E.NO_AUDIO_STREAM),
        "mismatch": ("mismatch.mp4", E.AV_LENGTH_MISMATCH),
        "corrupt": ("corrupt.mp4", E.UNREADABLE_VIDEO),
        "truncated": ("truncated.mp4", E.UNREADABLE_VIDEO),  # mp4 index at the end: cut off
        "truncated_mkv": ("truncated.mkv", E.TRUNCATED_VIDEO),
        "zero": ("zero.mp4", E.EMPTY_FILE),
        "zero_duration": ("zero_duration.mp4", E.NO_VIDEO_STREAM),
        "audio_only": ("audio_only.mp4", E.NO_VIDEO_STREAM),
        "absent": ("absent.mp4", E.FILE_NOT_FOUND),
        "no_text": ("good25.mp4", E.MISSING_TRANSCRIPT),
        "empty_text": ("good25.mp4", E.EMPTY_TRANSCRIPT),
    }
    rows = [(u, str(root / f)) for u, (f, _) in expected.items()]
    rows.append(("good25", str(root / "good30.mp4")))  # a repeated id: skipped, not dropped
    rows.append(("no_path", ""))
    listing = _kaldi(root / "videos.scp", rows)
    text = _kaldi(
        root / "text",
        [(u, "HELLO WORLD") for u in expected if u not in ("no_text", "empty_text")] + [("empty_text", "")],
    )
    reasons = [(u, r) for u, (_, r) in expected.items() if r]
    reasons += [("good25", E.DUPLICATE_UTTID), ("no_path", E.MISSING_PATH)]
    processed = [u for u, (_, r) in expected.items() if r is None]
    return root, listing, text, processed, sorted(reasons)


def _args(listing, outdir, text, *extra):
    return ["--input", str(listing), "--outdir", str(outdir), "--text", str(text), "--max_gap", "12", *extra]


def test_two_jobs_then_merge_account_for_every_input(corpus, tmp_path, capsys):
    _, listing, text, processed, reasons = corpus
    outdir = tmp_path / "out"
    assert main(_args(listing, outdir, text, "--nj", "2", "--job", "2")) == 0
    assert main(_args(listing, outdir, text, "--nj", "2", "--job", "1")) == 0
    assert main(_args(listing, outdir, text, "--nj", "2", "--merge")) == 0
    summary = capsys.readouterr().out

    videos, wavs = read_kaldi_map(outdir / "video.scp"), read_kaldi_map(outdir / "wav.scp")
    skipped = read_skip_report(outdir / "skipped.tsv")
    assert sorted(videos) == sorted(wavs) == sorted(processed)
    assert sorted((s.uttid, s.reason) for s in skipped) == reasons
    num_inputs = len([line for line in listing.read_text().splitlines() if line.strip()])
    assert len(videos) + len(skipped) == num_inputs
    assert f"{num_inputs} input utterances = {len(processed)} processed" in summary
    assert f"{len(skipped)} skipped" in summary

    # lists are sorted, and the outputs are what the model reads
    for name in ("video.scp", "wav.scp", "text", "utt2num_frames"):
        keys = [line.split()[0] for line in (outdir / name).read_text().splitlines()]
        assert keys == sorted(keys) == sorted(processed)
    frames = read_kaldi_map(outdir / "utt2num_frames")
    for uttid in processed:
        roi = load_roi(videos[uttid])
        assert roi.shape == (50, 96, 96) and roi.dtype == np.uint8 and int(frames[uttid]) == 50
        samples, rate = soundfile.read(wavs[uttid])
        assert rate == 16000 and samples.ndim == 1 and len(samples) == 50 * 640
    assert read_kaldi_map(outdir / "text")["good30"] == "HELLO WORLD"
    header = (outdir / "skipped.tsv").read_text().splitlines()[0]
    assert header == "uttid\tpath\treason\tdetail"


def test_unfinished_shards_and_unlisted_ids_are_reported(corpus, tmp_path):
    root, listing, text, _, _ = corpus
    outdir = tmp_path / "out"
    rows = [("zero", root / "zero.mp4"), ("absent", root / "absent.mp4"), ("x", root / "corrupt.mp4")]
    fast = _kaldi(root / "fast.scp", rows)
    shard = root / "shard_a.txt"
    shard.write_text("zero\nabsent\n")
    assert main(["--input", str(fast), "--outdir", str(outdir), "--shard_list", str(shard)]) == 0
    assert main(["--input", str(fast), "--outdir", str(outdir), "--merge", "--shard_list", str(shard)]) == 0
    reasons = {s.uttid: s.reason for s in read_skip_report(outdir / "skipped.tsv")}
    assert reasons == {"zero": E.EMPTY_FILE, "absent": E.FILE_NOT_FOUND, "x": E.NOT_IN_ANY_SHARD}
    # merging 2 jobs when only job 1 ran: job 2's entries are listed, not lost
    assert main(["--input", str(fast), "--outdir", str(outdir), "--nj", "2", "--job", "1"]) == 0
    assert main(["--input", str(fast), "--outdir", str(outdir), "--nj", "2", "--merge"]) == 0
    rows = read_skip_report(outdir / "skipped.tsv")
    assert len(rows) == 3 and {r.reason for r in rows if r.uttid == "zero"} == {E.SHARD_MISSING}


def test_all_jobs_in_one_call_and_module_entry_point(corpus, tmp_path):
    root, _, _, _, _ = corpus
    listing = _kaldi(tmp_path / "l.scp", [("b", root / "good30.mp4"), ("a", root / "zero.mp4")])
    outdir = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "espnet_usr2.bin.usr2_prepare_roi",
            "--input",
            str(listing),
            "--outdir",
            str(outdir),
            "--nj",
            "2",
            "--roi_format",
            "npz",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "2 input utterances = 1 processed" in proc.stdout and "empty_file" in proc.stdout
    roi_path = read_kaldi_map(outdir / "video.scp")["b"]
    assert roi_path.endswith(".npz") and load_roi(roi_path).shape == (50, 96, 96)
    assert "job 2/2" in proc.stderr  # progress lines


def test_precomputed_landmarks_list(corpus, tmp_path):
    root, _, _, _, _ = corpus
    clip = root / "good30.mp4"  # 60 source frames at 30 fps
    detected = extract_roi(clip).landmarks  # 50 frames at 25 fps: as a file, too few for the video
    per_source = np.repeat(detected, 2, axis=0)[:60]
    per_source[3] = np.nan
    good = save_landmarks_pickle(tmp_path / "good.pkl", per_source)
    short = save_landmarks_pickle(tmp_path / "short.pkl", detected)
    listing = _kaldi(tmp_path / "l.scp", [("a", clip), ("b", clip), ("c", clip), ("d", clip)])
    lms = _kaldi(tmp_path / "lm.scp", [("a", good), ("b", short), ("d", tmp_path / "gone.pkl")])
    outdir = tmp_path / "out"
    # default: an utterance the landmark list lacks ("c") falls back to the face detector
    assert main(["--input", str(listing), "--outdir", str(outdir), "--landmarks", str(lms)]) == 0
    assert list(read_kaldi_map(outdir / "utt2num_frames").items()) == [("a", "50"), ("c", "50")]
    assert (outdir / "landmark_fallback.list").read_text() == "c\n"
    reasons = {s.uttid: s.reason for s in read_skip_report(outdir / "skipped.tsv")}
    assert reasons == {"b": E.LANDMARK_COUNT_MISMATCH, "d": E.MISSING_LANDMARKS}
    # strict: the unlisted utterance is skipped with its reason instead
    strict = tmp_path / "strict"
    assert (
        main(["--input", str(listing), "--outdir", str(strict), "--landmarks", str(lms), "--missing_landmarks", "skip"])
        == 0
    )
    assert list(read_kaldi_map(strict / "utt2num_frames").items()) == [("a", "50")]
    reasons = {s.uttid: s.reason for s in read_skip_report(strict / "skipped.tsv")}
    assert reasons == {"b": E.LANDMARK_COUNT_MISMATCH, "c": E.MISSING_LANDMARKS, "d": E.MISSING_LANDMARKS}
