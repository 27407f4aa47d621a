"""Fast tests of the recipe's shell helpers: option parsing, the local and Slurm job
runners, and usr2.sh's messages for missing inputs."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "egs2" / "TEMPLATE" / "usr2"
UTILS = TEMPLATE / "utils"


def _bash(script: str, cwd: Path, *args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", script, "test", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    )


@pytest.fixture()
def recipe(tmp_path: Path) -> Path:
    """A recipe directory laid out like egs2/<corpus>/usr2 (shared files linked)."""
    d = tmp_path / "recipe"
    d.mkdir()
    for name in ("utils", "pyscripts", "scripts", "usr2.sh", "cmd.sh", "db.sh"):
        (d / name).symlink_to(TEMPLATE / name)
    (d / "conf").mkdir()
    return d


# ------------------------------------------------------------------ parse_options.sh
PARSE = """
set -euo pipefail
stage=1
stop_stage=100
train_config=conf/a.yaml
inference_args=""
use_x=true
help_message="usage: demo"
. utils/parse_options.sh
echo "stage=${stage} stop_stage=${stop_stage} train_config=${train_config}" \
    "inference_args=[${inference_args}] use_x=${use_x} rest=[$*]"
"""


def test_parse_options_forms_and_rest(recipe):
    p = _bash(
        PARSE,
        recipe,
        "--stage",
        "3",
        "--stop-stage=11",
        "--train_config",
        "conf/b c.yaml",
        "--inference_args",
        "--beam_size 5 --nbest 2",
        "--use-x",
        "false",
        "pos1",
        "--notparsed",
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == (
        "stage=3 stop_stage=11 train_config=conf/b c.yaml "
        "inference_args=[--beam_size 5 --nbest 2] use_x=false rest=[pos1 --notparsed]"
    )


def test_parse_options_double_dash_and_empty_value(recipe):
    p = _bash(PARSE, recipe, "--train_config=", "--", "--stage", "9")
    assert p.returncode == 0, p.stderr
    assert "train_config= " in p.stdout and "stage=1 " in p.stdout and "rest=[--stage 9]" in p.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--no_such_option", "1"], "unknown option --no_such_option"),
        (["--stage"], "option --stage needs a value"),
        (["--use_x", "yes"], "--use_x takes true or false"),
    ],
)
def test_parse_options_errors(recipe, args, message):
    p = _bash(PARSE, recipe, *args)
    assert p.returncode != 0
    assert message in p.stderr


def test_parse_options_help(recipe):
    p = _bash(PARSE, recipe, "--help")
    assert p.returncode == 0 and p.stdout.strip() == "usage: demo"


# ------------------------------------------------------------------ run_local.sh
def test_run_local_job_range_substitution(tmp_path):
    p = subprocess.run(
        [str(UTILS / "run_local.sh"), "JOB=2:5", "log/x.JOB.log", "echo", "job JOB of JOBS", ">", "out.JOB"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    for j in range(2, 6):
        assert (tmp_path / f"out.{j}").read_text() == f"job {j} of JOBS\n"  # "JOBS" is not the job variable
        log = (tmp_path / "log" / f"x.{j}.log").read_text()
        assert log.startswith("# echo") and "# Ended (code 0)" in log
    assert not (tmp_path / "out.1").exists() and not (tmp_path / "out.6").exists()


def test_run_local_failure_propagates_after_all_jobs(tmp_path):
    # job 3 fails; the others still run to the end, and the runner names the failure.
    p = subprocess.run(
        [
            str(UTILS / "run_local.sh"),
            "--max-jobs-run",
            "2",
            "JOB=1:5",
            "log/t.JOB.log",
            "touch",
            "done.JOB",
            "&&",
            "test",
            "JOB",
            "-ne",
            "3",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert "1 of 5 job(s) failed" in p.stderr and "log/t.3.log" in p.stderr
    assert all((tmp_path / f"done.{j}").exists() for j in range(1, 6))
    assert "# Ended (code 1)" in (tmp_path / "log" / "t.3.log").read_text()
    assert "# Ended (code 0)" in (tmp_path / "log" / "t.4.log").read_text()


def test_run_local_runs_in_parallel(tmp_path):
    import time

    t0 = time.time()
    p = subprocess.run(
        [str(UTILS / "run_local.sh"), "--max-jobs-run", "4", "JOB=1:4", "log/s.JOB.log", "sleep", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    assert time.time() - t0 < 3.5  # four 1 s jobs at once, not one after the other


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 CPUs")
def test_run_local_default_uses_the_cpus_not_omp_num_threads(tmp_path):
    # path.sh exports OMP_NUM_THREADS=1 (the jobs' own threads); GNU nproc honours it, which
    # once ran every ROI-extraction and decoding job one after the other. Each job here
    # waits (up to 10 s) for the other to have started: only two at once can both succeed.
    job = (
        "touch started.JOB; for i in $(seq 100); do [ -e started.1 ] && [ -e started.2 ] && exit 0; sleep 0.1; done;"
        " exit 1"
    )
    p = subprocess.run(
        [str(UTILS / "run_local.sh"), "JOB=1:2", "log/w.JOB.log", "bash", "-c", job],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert p.returncode == 0, (p.stderr, (tmp_path / "log" / "w.1.log").read_text())


def test_run_local_single_job_and_ignored_cluster_options(tmp_path):
    p = subprocess.run(
        [str(UTILS / "run_local.sh"), "--gpu", "1", "--mem", "4G", "log/one.log", "false"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 1
    assert "# Ended (code 1)" in (tmp_path / "log" / "one.log").read_text()


# ------------------------------------------------------------------ run_slurm.sh
def test_run_slurm_print_generates_array_script(tmp_path):
    p = subprocess.run(
        [
            str(UTILS / "run_slurm.sh"),
            "--print",
            "--gpu",
            "2",
            "--mem",
            "16G",
            "--time",
            "1:00:00",
            "--partition",
            "gpu",
            "--num_threads",
            "4",
            "--max-jobs-run",
            "3",
            "JOB=1:4",
            "exp/log/decode.JOB.log",
            "python",
            "-m",
            "x",
            "--key_file",
            "keys.JOB.scp",
            "a b",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    text = p.stdout
    for line in (
        "#SBATCH --job-name=decode",
        "#SBATCH --array=1-4%3",
        "#SBATCH --gres=gpu:2",
        "#SBATCH --mem=16G",
        "#SBATCH --time=1:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --output=exp/log/q/decode.%a.out",
    ):
        assert line in text.splitlines(), line
    assert text.count("keys.") == 4 and "keys.4.scp" in text and "keys.JOB" not in text
    assert not (tmp_path / "exp").exists()  # --print submits and writes nothing
    # the script is valid bash
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def _fake_sbatch(tmp_path: Path) -> Path:
    """An sbatch that runs every array task of the script locally, like a tiny cluster."""
    fake = tmp_path / "fake_sbatch"
    fake.write_text("""#!/usr/bin/env bash
set -u
script="${@: -1}"
range=$(sed -n 's/^#SBATCH --array=\\([0-9]*-[0-9]*\\).*/\\1/p' "$script")
rc=0
for ((i=${range%-*}; i<=${range#*-}; i++)); do SLURM_ARRAY_TASK_ID=$i SLURM_JOB_ID=42 bash "$script" || rc=1; done
exit $rc
""")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_run_slurm_submits_waits_and_reports_failures(tmp_path):
    env = {**os.environ, "SBATCH": str(_fake_sbatch(tmp_path))}
    ok = subprocess.run(
        [str(UTILS / "run_slurm.sh"), "JOB=1:3", "log/w.JOB.log", "echo", "task JOB", ">", "o.JOB"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    assert [(tmp_path / f"o.{j}").read_text() for j in (1, 2, 3)] == ["task 1\n", "task 2\n", "task 3\n"]
    assert "# Ended (code 0)" in (tmp_path / "log" / "w.2.log").read_text()
    bad = subprocess.run(
        [str(UTILS / "run_slurm.sh"), "JOB=1:3", "log/f.JOB.log", "test", "JOB", "-ne", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 1
    assert "1 of 3 task(s) failed" in bad.stderr and "log/f.2.log" in bad.stderr


def test_run_slurm_requeues_a_task_stopped_with_a_resume_point(tmp_path):
    """--requeue true: SIGUSR1 sent to the batch shell reaches the command; its exit code 75 (a
    training stopped by --stop_signals) requeues the task, whose second run adds to the log."""
    fake = tmp_path / "fake_sbatch"
    fake.write_text("""#!/usr/bin/env bash
set -u
script="${@: -1}"
run() {  # one run of task 1, sent SIGUSR1 once the command is up when $1 is 'signal'
    SLURM_ARRAY_TASK_ID=1 SLURM_JOB_ID=42 SLURM_RESTART_COUNT=$2 bash "$script" & shell=$!
    if [ "$1" = signal ]; then
        until [ -f started ]; do sleep 0.1; done
        kill -USR1 "$shell"
    fi
    wait "$shell"
}
run signal 0
while [ -f requeued ]; do rm requeued; run quiet 1; done
""")
    scontrol = tmp_path / "fake_scontrol"
    scontrol.write_text('#!/usr/bin/env bash\n[ "$1 $2" = "requeue 42_1" ] && touch requeued\n')
    trainer = tmp_path / "trainer.py"  # stops with code 75 on SIGUSR1, finishes on its second run
    trainer.write_text(
        "import os, signal, sys, time\n"
        "if os.path.exists('resume_point'):\n    print('resumed'); sys.exit(0)\n"
        "def stop(*_):\n    open('resume_point', 'w').close(); print('stopped'); sys.exit(75)\n"
        "signal.signal(signal.SIGUSR1, stop)\nopen('started', 'w').close()\ntime.sleep(60)\nsys.exit(1)\n"
    )
    for f in (fake, scontrol):
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "SBATCH": str(fake), "SCONTROL": str(scontrol)}
    p = subprocess.run(
        [
            str(UTILS / "run_slurm.sh"),
            "--requeue",
            "true",
            "--signal_before",
            "120",
            "JOB=1:1",
            "log/train.JOB.log",
            sys.executable,
            str(trainer),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    log = (tmp_path / "log" / "train.1.log").read_text()
    assert log.count("# Started at") == 2
    assert "stopped" in log and "requeued" in log and "resumed" in log and "# Ended (code 0)" in log
    script = (tmp_path / "log" / "q" / "train.sh").read_text()
    assert "#SBATCH --requeue" in script.splitlines() and "#SBATCH --signal=B:USR1@120" in script.splitlines()


# ------------------------------------------------------------------ usr2.sh
def test_usr2_help_and_unknown_option(recipe):
    p = subprocess.run(["./usr2.sh", "--help"], cwd=recipe, capture_output=True, text=True)
    assert p.returncode == 0 and "--unlabelled_sets" in p.stdout and "Stages:" in p.stdout
    p = subprocess.run(["./usr2.sh", "--stage", "3", "--bogus", "1"], cwd=recipe, capture_output=True, text=True)
    assert p.returncode != 0 and "unknown option --bogus" in p.stderr


@pytest.mark.parametrize(
    "stage, args, missing",
    [
        (1, [], "local/data.sh"),
        (2, [], "data/tr/video_src.scp"),
        (3, [], "dump/extract/tr/video.scp"),
        (4, [], "dump/org/tr/utt2num_frames"),
        (5, [], "dump/tr/text"),
        (10, ["--train_config", "conf/missing.yaml"], "conf/missing.yaml"),
        (12, ["--train_config", "conf/t.yaml", "--inference_config", "conf/t.yaml"], "exp/t_tr/config.yaml"),
        (13, ["--train_config", "conf/t.yaml", "--inference_config", "conf/t.yaml"], "dump/te/text"),
        (14, ["--train_config", "conf/t.yaml"], "exp/t_tr/config.yaml"),
    ],
)
def test_usr2_stage_names_missing_input(recipe, stage, args, missing):
    (recipe / "conf" / "t.yaml").write_text("seed: 1\n")
    p = subprocess.run(
        [
            "./usr2.sh",
            "--stage",
            str(stage),
            "--stop_stage",
            str(stage),
            "--labelled_sets",
            "tr",
            "--valid_set",
            "va",
            "--test_sets",
            "te",
            *args,
        ],
        cwd=recipe,
        capture_output=True,
        text=True,
    )
    assert p.returncode != 0
    assert f"missing input {missing}" in p.stderr, p.stderr


def test_stage4_filters_and_reports(recipe):
    org = recipe / "dump" / "org" / "tr"
    org.mkdir(parents=True)
    frames = {"s_1": 5, "s_2": 50, "s_3": 900, "s_4": 60, "s_5": 70}
    (org / "utt2num_frames").write_text("".join(f"{u} {n}\n" for u, n in frames.items()))
    for f in ("video.scp", "wav.scp"):
        (org / f).write_text("".join(f"{u} /x/{u}\n" for u in frames))
    (org / "utt2spk").write_text("".join(f"{u} s\n" for u in frames))
    (org / "text").write_text("s_1 A\ns_2 B C\ns_3 D\ns_4\ns_5 E\n")
    p = subprocess.run(
        [
            "./usr2.sh",
            "--stage",
            "4",
            "--stop_stage",
            "4",
            "--labelled_sets",
            "tr",
            "--min_frames",
            "10",
            "--max_frames",
            "800",
        ],
        cwd=recipe,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    out = recipe / "dump" / "tr"
    assert [line.split()[0] for line in (out / "video.scp").read_text().splitlines()] == ["s_2", "s_5"]
    assert (out / "text").read_text() == "s_2 B C\ns_5 E\n"
    assert (out / "spk2utt").read_text() == "s s_2 s_5\n"
    dropped = (out / "dropped.tsv").read_text().splitlines()
    assert dropped[1:] == [
        "s_1\t5\tshorter than 10 frames",
        "s_3\t900\tlonger than 800 frames",
        "s_4\t60\tempty transcript",
    ]
    assert "kept 2 of 5, dropped 3" in p.stdout


def test_lrs3_data_prep_layout(recipe, tmp_path):
    corpus = tmp_path / "corpus"
    for split, spk, clip, text in [
        ("trainval", "spkA", "50001", "HELLO WORLD"),
        ("trainval", "spk_B", "50002", "A B"),
        ("trainval", "spkA", "50003", None),
        ("test", "spkC", "00001", "X Y Z"),
    ]:
        d = corpus / split / spk
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{clip}.mp4").write_bytes(b"")
        if text is not None:
            (d / f"{clip}.txt").write_text(f"Text:  {text}\nConf:  4\n\nWORD START END ASDSCORE\n")
    p = subprocess.run(
        ["scripts/lrs3_data.sh", "--corpus", str(corpus), "--splits", "trainval test"],
        cwd=recipe,
        capture_output=True,
        text=True,
    )
    assert p.returncode == 0, p.stderr
    tv = recipe / "data" / "trainval"
    assert (tv / "text").read_text() == "spkA_50001 HELLO WORLD\nspk_B_50002 A B\n"
    assert (tv / "utt2spk").read_text() == "spkA_50001 spkA\nspkA_50003 spkA\nspk_B_50002 spk_B\n"
    assert (tv / "spk2utt").read_text() == "spkA spkA_50001 spkA_50003\nspk_B spk_B_50002\n"
    assert (tv / "video_src.scp").read_text().splitlines()[0] == f"spkA_50001 {corpus}/trainval/spkA/50001.mp4"
    assert "1 without a Text: line" in p.stdout
    missing = subprocess.run(
        ["scripts/lrs3_data.sh", "--corpus", str(tmp_path / "nope")], cwd=recipe, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "does not exist" in missing.stderr


def test_cmd_sh_backends(recipe, tmp_path):
    show = '. ./cmd.sh; echo "$train_cmd|$decode_cmd"'
    assert _bash(show, recipe).stdout.strip() == "utils/run_local.sh|utils/run_local.sh"
    slurm = _bash(show, recipe, env={"USR2_CMD_BACKEND": "slurm"}).stdout
    assert slurm.startswith("utils/run_slurm.sh --partition")
    fake_espnet = tmp_path / "espnet"
    (fake_espnet / "utils").mkdir(parents=True)
    for tool in ("run.pl", "slurm.pl"):
        (fake_espnet / "utils" / tool).write_text("#!/bin/sh\n")
        (fake_espnet / "utils" / tool).chmod(0o755)
    out = _bash(show, recipe, env={"ESPNET_ROOT": str(fake_espnet)}).stdout.strip()
    assert out == f"{fake_espnet}/utils/run.pl|{fake_espnet}/utils/run.pl"
    out = _bash(show, recipe, env={"ESPNET_ROOT": str(fake_espnet), "USR2_CMD_BACKEND": "slurm"}).stdout
    assert out.startswith(f"{fake_espnet}/utils/slurm.pl --config conf/slurm.conf")


FAKE_TRAINER = """#!/usr/bin/env bash
# stands in for python's training runs: records the thread setting of each, writes what
# stage 11 hands on (config.yaml and the model it selects); other calls go to python
[ "$2" = espnet_usr2.bin.usr2_train ] || exec %(python)s "$@"
out=""
while [ "$#" -gt 0 ]; do [ "$1" = --output_dir ] && out="$2"; shift; done
echo "OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset}" >> "$(dirname "$0")/calls.log"
mkdir -p "${out}" && echo model > "${out}/valid.loss.best.pth"
printf 'best_model_criterion:\\n- [valid, loss, min]\\nkeep_nbest_models: 1\\n' > "${out}/config.yaml"
"""


def _fake_stage11(recipe: Path, *extra: str) -> subprocess.CompletedProcess:
    """usr2.sh stage 11 on a one-utterance layout with FAKE_TRAINER as the training run."""
    fake = recipe / "fake_python"
    fake.write_text(FAKE_TRAINER % {"python": sys.executable})
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    (recipe / "conf" / "t.yaml").write_text("seed: 1\n")
    tok = recipe / "data" / "token_list" / "bpe_unigram30"
    tok.mkdir(parents=True, exist_ok=True)
    for f in ("tokens.txt", "bpe.model"):
        (tok / f).write_text("x\n")
    for s in ("tr", "va"):
        (recipe / "dump" / s).mkdir(parents=True, exist_ok=True)
        for f in ("wav.scp", "video.scp", "text"):
            (recipe / "dump" / s / f).write_text("u x\n")
    for split in ("train", "valid"):
        (recipe / "exp" / "stats_tr" / split).mkdir(parents=True, exist_ok=True)
        (recipe / "exp" / "stats_tr" / split / "video_shape").write_text("u 10,96,96\n")
    return subprocess.run(
        [
            "./usr2.sh",
            "--stage",
            "11",
            "--stop_stage",
            "11",
            "--python",
            str(fake),
            "--labelled_sets",
            "tr",
            "--valid_set",
            "va",
            "--nbpe",
            "30",
            "--train_config",
            "conf/t.yaml",
            *extra,
        ],
        cwd=recipe,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "USR2_CMD_BACKEND": "local"},
    )


@pytest.mark.parametrize("extra, expected", [([], "1"), (["--train_nthreads", "3"], "3")])
def test_training_threads(recipe, extra, expected):
    """Training gets --train_nthreads OpenMP threads; without it, path.sh's one thread."""
    p = _fake_stage11(recipe, *extra)
    assert p.returncode == 0, p.stderr
    assert (recipe / "calls.log").read_text() == f"OMP_NUM_THREADS={expected}\n"


def test_rerunning_training_keeps_the_earlier_logs(recipe):
    """A second stage 11 (ESPnet resumes, or finds the run finished) writes a new train.log
    and keeps the first one as train.1.log, then train.2.log."""
    assert _fake_stage11(recipe).returncode == 0
    exp = next(p.parent for p in (recipe / "exp").glob("*/train.log"))
    first = (exp / "train.log").read_text()
    assert first
    p = _fake_stage11(recipe)
    assert p.returncode == 0, p.stderr
    assert (exp / "train.1.log").read_text() == first and (exp / "train.log").is_file()
    assert f"kept the earlier {(exp / 'train.log').relative_to(recipe)} as" in p.stdout + p.stderr
    assert _fake_stage11(recipe).returncode == 0
    assert (exp / "train.2.log").is_file() and (exp / "train.1.log").read_text() == first


# ------------------------------------------------------------------ usr2.sh --help, stage 5 skip
def _usr2_options() -> dict:
    """The option variables of usr2.sh's options block and their defaults (as bash sets them)."""
    text = (TEMPLATE / "usr2.sh").read_text()
    block = text.split("# ---------------------------------------------------------------- options (defaults)", 1)[1]
    block = block.split("help_message=", 1)[0]
    names = re.findall(r"^([a-z_][a-z0-9_]*)=", block, flags=re.M)
    show = "".join(f'printf "%s\\0" "${{{n}}}"; ' for n in names)
    out = subprocess.run(["bash", "-c", block + show], capture_output=True, text=True, check=True).stdout
    return dict(zip(names, out.split("\0")))


def test_usr2_help_lists_every_option_with_its_default(recipe):
    options = _usr2_options()
    assert {
        "stage",
        "semi_type",
        "score_cer",
        "bpe_train_text",
        "python",
        "pretrained_encoder",
        "model_dir",
        "token_list",
        "bpemodel",
        "inference_model",
    } <= set(options), options
    p = subprocess.run(["./usr2.sh", "--help"], cwd=recipe, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    entries = re.split(r"\n(?=  --)", p.stdout)  # one entry per option line and its continuation lines
    for name, default in options.items():
        entry = [e for e in entries if re.match(rf"  --{name}\b", e)]
        assert entry, f"--{name} is not in usr2.sh --help"
        assert f"[{default}]" in entry[0], (name, default, entry[0])


def _tokenizer_files(recipe: Path, first: str = "<blank>") -> None:
    (recipe / "released").mkdir()
    (recipe / "released" / "tokens.txt").write_text(f"{first}\n<unk>\n▁A\n<sos/eos>\n")
    (recipe / "released" / "bpe.model").write_text("x")


@pytest.mark.parametrize(
    "args, ok, message",
    [
        (
            ["--token_list", "released/tokens.txt", "--bpemodel", "released/bpe.model"],
            True,
            "Stage 5 skipped: --token_list released/tokens.txt (4 tokens) and --bpemodel released/bpe.model given",
        ),
        (
            ["--token_list=released/tokens.txt", "--bpemodel=released/none.model"],
            False,
            "missing input released/none.model",
        ),
        (
            ["--token_list", "released/none.txt", "--bpemodel", "released/bpe.model"],
            False,
            "missing input released/none.txt",
        ),
        (["--token_list", "released/tokens.txt"], False, "give both --token_list and --bpemodel"),
    ],
)
def test_stage5_skipped_for_a_given_tokenizer(recipe, args, ok, message):
    _tokenizer_files(recipe)
    p = subprocess.run(
        ["./usr2.sh", "--stage", "5", "--stop_stage", "5", "--labelled_sets", "tr", *args],
        cwd=recipe,
        capture_output=True,
        text=True,
    )
    assert (p.returncode == 0) == ok, p.stderr
    assert message in (p.stdout if ok else p.stderr), (p.stdout, p.stderr)
    assert not (recipe / "data" / "token_list").exists()  # nothing trained


def test_stage5_checks_a_given_token_list_layout(recipe):
    _tokenizer_files(recipe, first="<unk>")
    p = subprocess.run(
        [
            "./usr2.sh",
            "--stage",
            "5",
            "--stop_stage",
            "5",
            "--token_list",
            "released/tokens.txt",
            "--bpemodel",
            "released/bpe.model",
        ],
        cwd=recipe,
        capture_output=True,
        text=True,
    )
    assert p.returncode != 0 and "must start with <blank> and end with <sos/eos>" in p.stderr


# ------------------------------------------------------------------ corpus run.sh option parsing
FAKE_USR2 = """#!/usr/bin/env bash
printf '%s\\n' "$@" > usr2_args.txt
"""


def _tracked_entries(directory: Path) -> set[str]:
    """The names directly under ``directory`` that git tracks (files, folders, links)."""
    listed = subprocess.run(
        ["git", "ls-files", "--", "."], cwd=directory, capture_output=True, text=True, check=True
    ).stdout.split()
    return {Path(path).parts[0] for path in listed}


@pytest.mark.parametrize(
    "corpus, own, effect",
    [
        (
            "lrs3",
            ["--setting=high", "--model", "base_plus"],
            {"--labelled_sets": "pretrain trainval", "--train_config": "conf/train_usr2_base_plus.yaml"},
        ),
        ("lrs2", ["--setting", "high", "--model=large"], {"--train_config": "conf/train_usr2_large.yaml"}),
        ("lrs2_lrs3_vox2_avspeech", ["--model=huge", "--valid_size", "7"], {"--local_data_opts": "--valid_size 7 "}),
        ("vox2", ["--max_len=4"], {"--local_data_opts": "--max_len 4 "}),
        ("avspeech", ["--data_opts", "--x 1"], {"--local_data_opts": " --x 1"}),
        ("mini_lrs3", ["--inference_nj=3", "--train_nthreads", "1"], {"--inference_nj": "3", "--train_nthreads": "1"}),
        (
            "librispeech",
            ["--model_dir", "/m", "--splits=test-clean"],
            {"--model_dir": "/m", "--test_sets": "test_clean", "--local_data_opts": "--splits test-clean"},
        ),
        ("wildvsr", ["--model_dir=/m"], {"--model_dir": "/m", "--modalities": "v"}),
    ],
)
def test_corpus_run_sh_parses_both_forms_and_passes_the_rest(corpus, own, effect, tmp_path):
    """Every corpus run.sh reads its own options with utils/parse_options.sh (--x y and
    --x=y) and hands every other option, as given, to usr2.sh (here a stand-in that
    records its arguments)."""
    src = REPO / "egs2" / corpus / "usr2"
    d = tmp_path / "recipe"
    d.mkdir()
    # What a clean clone has: outputs of an earlier run here (exp/, dump/) must not change it.
    for name in _tracked_entries(src):
        if name != "usr2.sh":
            (d / name).symlink_to((src / name).resolve())
    (d / "usr2.sh").write_text(FAKE_USR2)
    (d / "usr2.sh").chmod(0o755)
    passed = ["--stage", "10", "--pretrained_encoder=/x/enc.pth", "--ngpu", "2", "--tag", "a b"]
    p = subprocess.run(
        ["./run.sh", "--nj=3", *own, *passed],
        cwd=d,
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
    )
    assert p.returncode == 0, p.stderr
    args = (d / "usr2_args.txt").read_text().splitlines()
    rest = passed[2:] if corpus == "mini_lrs3" else passed  # mini's run.sh has its own --stage
    assert args[-len(rest) :] == rest  # the rest, as given, last (it wins in usr2.sh)
    assert args[args.index("--stage") + 1] == "10"
    assert args[args.index("--nj") + 1] == "3"  # run.sh's own option, --x=y form
    for opt, value in effect.items():
        assert value in args[args.index(opt) + 1], (opt, args)
    p = subprocess.run(["./run.sh", "--help"], cwd=d, capture_output=True, text=True)
    assert p.returncode == 0 and "Every other option goes to usr2.sh" in p.stdout
    p = subprocess.run(["./run.sh", "--nj"], cwd=d, capture_output=True, text=True)
    assert p.returncode != 0 and "option --nj needs a value" in p.stderr
