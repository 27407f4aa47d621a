"""The embedded default recipe end to end, in a smaller setting: egs2/mini_lrs3/usr2/run.sh
generates a tiny corpus and runs usr2.sh stages 1-13 (supervised warm-up, then
semi-supervised training, A/V/AV decoding, scoring); the test checks what every stage
wrote and the RESULTS.md table. About 4-8 minutes on 2 CPU cores.

Marked ``recipe``: ``pytest -m "not recipe"`` leaves it out of a quick run.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest


GEN_OPTS = ("--n_pretrain 16 --n_trainval 36 --n_test 6 --n_long 2 --n_speakers 3 --n_test_speakers 2 "
            "--max_words 5 --long_min_words 8 --long_max_words 10 --size 128")
TAG = "train_usr2_ci_trainval_train_semi_pretrain"
DECODE_TAG = "decode_ci_valid.loss.best"

pytestmark = pytest.mark.recipe  # slow: leave out of a quick run with -m "not recipe"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, recipe_copy):
    recipe = recipe_copy("mini_lrs3", tmp_path_factory.mktemp("mini_recipe") / "usr2")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "USR2_CMD_BACKEND": "local"}
    env.pop("MINI_LRS3", None)
    cmd = ["./run.sh", "--gen_opts", GEN_OPTS, "--nj", "2", "--inference_nj", "2",
           "--local_data_opts", "--long_test true --valid_from trainval --valid_size 6",
           "--test_sets", "test test_long", "--nbpe", "40", "--max_frames", "300",
           "--sup_train_config", "conf/train_usr2_ci_sup.yaml", "--train_config", "conf/train_usr2_ci.yaml",
           "--labelled_batch_frames", "300", "--unlabelled_batch_frames", "300",
           "--inference_config", "conf/decode_ci.yaml"]
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=1500)
    elapsed = time.time() - t0
    (recipe / "ci_run.log").write_text(proc.stdout + proc.stderr)
    print(f"mini recipe CI setting: {elapsed:.0f} s wall", file=sys.stderr)
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    return recipe, proc.stdout, elapsed


def test_stages_wrote_their_outputs(ci_run):
    recipe, stdout, _ = ci_run
    corpus = recipe / "downloads" / "mini_lrs3"
    assert (corpus / "corpus_info.json").is_file()
    assert len(list((corpus / "trainval").glob("*/*.mp4"))) == 36
    # stage 1: 36 trainval clips = 30 train + 6 valid; stage 2-4 keep every clip
    assert len((recipe / "data" / "trainval_train" / "video_src.scp").read_text().splitlines()) == 30
    for s, n in (("trainval_train", 30), ("valid", 6), ("pretrain", 16), ("test", 6), ("test_long", 2)):
        d = recipe / "dump" / s
        for f in ("wav.scp", "video.scp", "utt2num_frames", "utt2spk"):
            assert len((d / f).read_text().splitlines()) == n, (s, f)
        if s != "pretrain":
            assert len((d / "text").read_text().splitlines()) == n
    assert (recipe / "dump" / "trainval_train" / "dropped.tsv").read_text().splitlines() == ["uttid\tframes\treason"]
    tokens = (recipe / "data" / "token_list" / "bpe_unigram40" / "tokens.txt").read_text().splitlines()
    assert tokens[:2] == ["<blank>", "<unk>"] and tokens[-1] == "<sos/eos>" and len(tokens) <= 40
    assert (recipe / "exp" / "stats_trainval_train" / "train" / "video_shape").is_file()
    assert (recipe / "exp" / "stats_unlab_pretrain" / "train" / "video_shape").is_file()
    # stage 11: supervised warm-up, then the semi-supervised run started from it
    exp = recipe / "exp" / TAG
    assert (recipe / "exp" / f"{TAG}_sup" / "valid.loss.best.pth").exists()
    assert (exp / "valid.loss.best.pth").exists()
    assert "--init_param exp/" + TAG + "_sup/valid.loss.best.pth" in (exp / "train.log").read_text()
    assert "loss_unl_a" in (exp / "train.log").read_text()  # unlabelled losses were trained
    # stage 12: every utterance decoded for every modality
    for s, n in (("test", 6), ("test_long", 2)):
        for m in ("audio", "video", "audiovisual"):
            hyp = exp / DECODE_TAG / s / m / "text"
            assert len(hyp.read_text().splitlines()) == n, hyp
            assert (exp / DECODE_TAG / s / m / "score_wer" / "result.txt").is_file()
    assert "Successfully finished stages 1-13" in stdout


def test_results_md_has_a_v_av_wer(ci_run):
    recipe, stdout, _ = ci_run
    results = (recipe / "exp" / TAG / "RESULTS.md").read_text()
    section = results.split("### WER (%) per modality", 1)[1].split("###", 1)[0]
    header = [c.strip() for c in section.strip().splitlines()[0].strip("|").split("|")]
    assert header[1:] == ["audio (A)", "video (V)", "audiovisual (AV)"], header
    rows = {}
    for line in section.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = [float(c) for c in cells[1:]]
    assert set(rows) == {f"{DECODE_TAG}/test", f"{DECODE_TAG}/test_long"}, rows
    for wers in rows.values():
        assert len(wers) == 3 and all(w >= 0.0 for w in wers)
    # each figure agrees with sclite's own summary line in result.txt
    for m, wer in zip(("audio", "video", "audiovisual"), rows[f"{DECODE_TAG}/test"]):
        result = (recipe / "exp" / TAG / DECODE_TAG / "test" / m / "score_wer" / "result.txt").read_text()
        err = re.search(r"\|\s*Sum/Avg\s*\|[^|]*\|(?:\s*[\d.]+){4}\s+([\d.]+)", result)
        assert err and float(err.group(1)) == pytest.approx(wer, abs=0.051), (m, err and err.group(0))
    # run.sh ends by printing the WER table
    tail = stdout.strip().splitlines()[-8:]
    assert any("audio (A)" in line and "video (V)" in line for line in tail), tail
