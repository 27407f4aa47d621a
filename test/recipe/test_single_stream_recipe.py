"""usr2.sh stages 2-13 with --allow_single_stream true on a set mixing audio-visual clips, a
video without an audio track and an audio file: the training sets keep only audio-visual
utterances (stage 4 lists and counts the others), the test set keeps all; each test
utterance is decoded (a given tiny model, --model_dir) in the modalities it has, and scored
per modality over those utterances, with the counts in the log and RESULTS.md."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

pytestmark = pytest.mark.recipe  # slow: leave out of a quick run with -m "not recipe"

TEMPLATE = Path(__file__).resolve().parents[2] / "egs2" / "TEMPLATE" / "usr2"
# uttid -> kind of media; speaker-prefixed ids (Kaldi's sort order)
SETS = {
    "train": {"s1-av-long": "long", "s1-av-short": "short", "s2-vid": "silent", "s3-aud": "wav"},
    "valid": {"s1-av-val": "short"},
    "test": {"s1-av-long": "long", "s1-av-short": "short", "s2-vid": "silent", "s3-aud": "wav"},
}


def _media(clips, root: Path) -> dict:
    from espnet_usr2.testing.roi_synth import make_clip

    silent = make_clip(root / "silent.mp4", seconds=1.2, size=128, seed=2, with_audio=False).path
    wav = root / "speech.wav"
    t = np.arange(16000) / 16000.0
    soundfile.write(str(wav), (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
    return {"long": clips["long"], "short": clips["short"], "silent": silent, "wav": wav}


@pytest.fixture(scope="module")
def run(clips, tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("single_stream_recipe")
    media = _media(clips, root / "media")
    recipe = root / "recipe"
    recipe.mkdir()
    for name in ("utils", "pyscripts", "scripts", "usr2.sh", "cmd.sh", "db.sh", "path.sh"):
        (recipe / name).symlink_to(TEMPLATE / name)
    (recipe / "conf").mkdir()
    (recipe / "conf" / "decode_greedy.yaml").write_text("method: greedy_att\nbatch_size: 2\nmaxlenratio: -3\n")
    for s, utts in SETS.items():
        d = recipe / "data" / s
        d.mkdir(parents=True)
        (d / "video_src.scp").write_text("".join(f"{u} {media[k]}\n" for u, k in utts.items()))
        (d / "text").write_text("".join(f"{u} a b c\n" for u in utts))
        (d / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utts))
    model = tiny_model_dir
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "USR2_CMD_BACKEND": "local",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [
            "./usr2.sh",
            "--stage",
            "2",
            "--stop_stage",
            "13",
            "--nj",
            "2",
            "--allow_single_stream",
            "true",
            "--labelled_sets",
            "train",
            "--valid_set",
            "valid",
            "--test_sets",
            "test",
            "--model_dir",
            str(model),
            "--inference_config",
            "conf/decode_greedy.yaml",
            "--inference_nj",
            "2",
            "--min_frames",
            "5",
        ],
        cwd=recipe,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    (recipe / "run.log").write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout[-4000:], proc.stderr[-4000:])
    return recipe, proc.stdout


def _keys(path: Path) -> set:
    return {line.split(maxsplit=1)[0] for line in path.read_text().splitlines() if line.strip()}


def test_training_sets_keep_only_audio_visual_utterances(run):
    recipe, stdout = run
    train = recipe / "dump" / "train"
    for f in ("video.scp", "wav.scp", "utt2num_frames", "text", "utt2spk"):
        assert _keys(train / f) == {"s1-av-long", "s1-av-short"}, f
    dropped = [line.split("\t") for line in (train / "dropped.tsv").read_text().splitlines()[1:]]
    assert sorted((u, r) for u, _, r in dropped) == [("s2-vid", "video-only"), ("s3-aud", "audio-only")]
    assert "train: dropped 2 single-stream utterances" in stdout
    assert "train: 4 utterances" in stdout and "(1 video-only, 1 audio-only)" in stdout  # stage 3


def test_test_set_keeps_every_utterance_with_its_streams(run):
    recipe, _ = run
    test = recipe / "dump" / "test"
    every = set(SETS["test"])
    assert _keys(test / "utt2num_frames") == _keys(test / "text") == _keys(test / "utt2spk") == every
    assert _keys(test / "video.scp") == every - {"s3-aud"}
    assert _keys(test / "wav.scp") == every - {"s2-vid"}
    frames = dict(line.split() for line in (test / "utt2num_frames").read_text().splitlines())
    assert frames["s3-aud"] == "25"  # 1 s of audio in 40 ms frames


def test_decoding_and_scoring_per_modality(run):
    recipe, stdout = run
    out = recipe / "exp" / "given_model" / "decode_greedy_model" / "test"
    av = {"s1-av-long", "s1-av-short"}
    expected = {"video": av | {"s2-vid"}, "audio": av | {"s3-aud"}, "audiovisual": av}
    for m, utts in expected.items():
        assert _keys(out / m / "text") == utts, m
        result = (out / m / "score_wer" / "result.txt").read_text()
        snt = [line for line in result.splitlines() if "Sum/Avg" in line][0].split("|")[2].split()[0]
        assert int(snt) == len(utts), (m, snt)
        assert f"Stage 13: scored test {m} ({len(utts)} of 4 utterances)" in stdout
    assert "video 3 audio 3 audiovisual 2 of 4 utterances (1 video-only, 1 audio-only)" in stdout
    results = (recipe / "exp" / "given_model" / "RESULTS.md").read_text()
    section = results.split("### Utterances scored per modality", 1)[1].split("###", 1)[0].strip().splitlines()
    assert section[2] == "|decode_greedy_model/test|3|3|2|", section
