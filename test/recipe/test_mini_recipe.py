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

from espnet_usr2.testing.recipes import MINI_CI_DECODE_OPTS as DECODE_OPTS
from espnet_usr2.testing.recipes import MINI_CI_DECODE_TAG as DECODE_TAG
from espnet_usr2.testing.recipes import MINI_CI_RUN_OPTS as RUN_OPTS
from espnet_usr2.testing.recipes import MINI_CI_TAG as TAG

pytestmark = pytest.mark.recipe  # slow: leave out of a quick run with -m "not recipe"


@pytest.fixture(scope="module")
def ci_run(tmp_path_factory, recipe_copy):
    recipe = recipe_copy("mini_lrs3", tmp_path_factory.mktemp("mini_recipe") / "usr2")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "USR2_CMD_BACKEND": "local"}
    env.pop("MINI_LRS3", None)
    cmd = ["./run.sh", *RUN_OPTS, *DECODE_OPTS]
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


# ------------------------------------------------------------------ the cluster path
# A stand-in sbatch: runs each array task of the script here, as a tiny cluster would. The
# first mouth-ROI array loses its task 2 to a "node failure" (SIGKILL to the task's process
# group) once that task has finished one utterance, so the resubmitted run must resume it
# from its journal.
FAKE_SBATCH = r"""#!/usr/bin/env bash
set -u
script="${@: -1}"
range=$(sed -n 's/^#SBATCH --array=\([0-9]*-[0-9]*\).*/\1/p' "$script")
journal_has_a_result() {  # a header line and at least one finished utterance
    local j
    for j in dump/extract/*/split*/2/journal.jsonl; do
        [ -f "$j" ] && [ "$(wc -l <"$j")" -ge 2 ] && return 0
    done
    return 1
}
rc=0
for ((i=${range%-*}; i<=${range#*-}; i++)); do
    if [ "$i" = 2 ] && grep -q usr2_prepare_roi "$script" && [ ! -e node_failed ]; then
        touch node_failed
        SLURM_ARRAY_TASK_ID=$i SLURM_JOB_ID=42 setsid bash "$script" & task=$!
        until journal_has_a_result || ! kill -0 "$task" 2>/dev/null; do sleep 0.05; done
        kill -9 -- "-$task" 2>/dev/null
        wait "$task"
        rc=1
    else
        SLURM_ARRAY_TASK_ID=$i SLURM_JOB_ID=42 bash "$script" || rc=1
    fi
done
exit $rc
"""
LISTS = ("wav.scp", "video.scp", "utt2num_frames", "utt2spk", "text")


@pytest.fixture(scope="module")
def slurm_run(ci_run, tmp_path_factory, recipe_copy):
    """Stages 1-10 of the same corpus and options through utils/run_slurm.sh (a stand-in
    sbatch), a ROI task killed on the first run, then the run resubmitted from stage 2."""
    local_recipe = ci_run[0]
    recipe = recipe_copy("mini_lrs3", tmp_path_factory.mktemp("mini_slurm") / "usr2")
    sbatch = recipe / "fake_sbatch"
    sbatch.write_text(FAKE_SBATCH)
    sbatch.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "USR2_CMD_BACKEND": "slurm",
        "SBATCH": str(sbatch),
        "MINI_LRS3": str(local_recipe / "downloads" / "mini_lrs3"),
    }
    cmd = ["./run.sh", *RUN_OPTS, "--test_sets", "test test_long", "--stop_stage", "10"]
    first = subprocess.run(cmd, cwd=recipe, env=env, capture_output=True, text=True, timeout=900)
    again = subprocess.run([*cmd, "--stage", "2"], cwd=recipe, env=env, capture_output=True, text=True, timeout=900)
    (recipe / "slurm_runs.log").write_text(first.stdout + first.stderr + again.stdout + again.stderr)
    return local_recipe, recipe, first, again


def test_cluster_path_resumes_a_killed_task_and_gives_the_local_lists(slurm_run):
    local, recipe, first, again = slurm_run
    assert (recipe / "node_failed").exists()
    assert first.returncode != 0 and "ROI extraction of" in first.stderr, first.stderr[-2000:]
    assert again.returncode == 0, (again.stdout[-3000:], again.stderr[-3000:])
    # the resubmitted task 2 took its finished utterances from the journal
    resumed = [
        p
        for p in (recipe / "dump" / "extract").glob("*/log/roi.2.log")
        if "done by an earlier run (journal)" in p.read_text()
    ]
    assert len(resumed) == 1, [p.read_text()[-500:] for p in (recipe / "dump" / "extract").glob("*/log/roi.2.log")]
    assert "#SBATCH --array=1-2" in (resumed[0].parent / "q" / "roi.sh").read_text()
    for s in ("trainval_train", "valid", "pretrain", "test", "test_long"):
        for name in LISTS:
            ours, theirs = recipe / "dump" / s / name, local / "dump" / s / name
            if theirs.exists():
                assert ours.read_text() == theirs.read_text(), (s, name)
    for stats in ("stats_trainval_train", "stats_unlab_pretrain"):
        for shape in (local / "exp" / stats).glob("*/*_shape"):
            assert (recipe / "exp" / stats / shape.parent.name / shape.name).read_text() == shape.read_text()
