"""Semi-supervised training end to end through ``python -m espnet_usr2.bin.usr2_train``.

One uninterrupted run, and runs stopped in the middle -- killed mid-epoch, killed while writing
a checkpoint, stopped by SIGTERM at a resume point -- and resumed: each resumed run must end
with exactly the same student and teacher weights.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from espnet2.train.reporter import Reporter

from espnet_usr2.train.stop_signal import PREEMPTED_EXIT_CODE

SLOW_WRITE_TRAIN = Path(__file__).with_name("slow_checkpoint_train.py")


MAX_EPOCH = 3


def _entries(option, root, with_text=True):
    args = [option, f"{root}/wav.scp,speech,sound", option, f"{root}/video.scp,video,roi_video"]
    return args + ([option, f"{root}/text,text,text"] if with_text else [])


@pytest.fixture(scope="module")
def semi_setup(tiny_config, token_list, write_toy_corpus, usr2_train, tmp_path_factory):
    root = tmp_path_factory.mktemp("usr2_semi")
    write_toy_corpus(root / "lab", num_utts=24, seed=0)
    write_toy_corpus(root / "valid", num_utts=8, seed=1, prefix="val")
    write_toy_corpus(root / "unl", num_utts=24, seed=2, prefix="unl")
    (root / "unl" / "text").unlink()  # unlabelled data has no transcripts
    (root / "tokens.txt").write_text("\n".join(token_list) + "\n")
    base = [
        "--config",
        str(tiny_config),
        "--token_list",
        str(root / "tokens.txt"),
        "--token_type",
        "char",
        *usr2_train.quiet,
    ]
    for name, data in (
        ("lab", _entries("--train_data_path_and_name_and_type", root / "lab")),
        ("unl", _entries("--train_data_path_and_name_and_type", root / "unl", with_text=False)),
    ):
        usr2_train(
            [
                *base,
                "--collect_stats",
                "true",
                "--output_dir",
                str(root / f"stats_{name}"),
                *data,
                *_entries("--valid_data_path_and_name_and_type", root / "valid"),
                "--train_shape_file",
                str(root / name / "wav.scp"),
                "--valid_shape_file",
                str(root / "valid" / "text"),
            ],
            root,
        )
    train = [
        *base,
        "--semi",
        "usr2",
        "--batch_type",
        "semi_supervised",
        "--labelled_batch_frames",
        "60",
        "--unlabelled_batch_frames",
        "100",
        "--max_epoch",
        str(MAX_EPOCH),
        "--log_interval",
        "1",
        "--scheduler_conf",
        "warmup_steps=5",
        *_entries("--train_data_path_and_name_and_type", root / "lab"),
        *_entries("--unlabelled_data_path_and_name_and_type", root / "unl", with_text=False),
        *_entries("--valid_data_path_and_name_and_type", root / "valid"),
        "--train_shape_file",
        str(root / "stats_lab" / "train" / "video_shape"),
        "--unlabelled_shape_file",
        str(root / "stats_unl" / "train" / "video_shape"),
        "--valid_shape_file",
        str(root / "stats_lab" / "valid" / "video_shape"),
    ]
    usr2_train([*train, "--output_dir", str(root / "exp_full")], root)
    return root, train


def _reporter(exp: Path) -> Reporter:
    reporter = Reporter()
    reporter.load_state_dict(torch.load(exp / "checkpoint.pth", weights_only=False)["reporter"])
    return reporter


def test_semi_supervised_run_lowers_validation_loss_and_logs_pseudo_labels(semi_setup):
    root, _ = semi_setup
    reporter = _reporter(root / "exp_full")
    valid = [reporter.get_value("valid", "loss", e) for e in range(1, MAX_EPOCH + 1)]
    assert valid[-1] < valid[0], valid
    for key in ("pl_mode_ar", "pl_ctc_keep", "pl_att_keep", "ema_momentum", "loss_unl_v", "loss_unl_av"):
        assert 0.0 <= reporter.get_value("train", key, MAX_EPOCH) < float("inf"), key
    assert reporter.get_value("train", "pl_att_len", MAX_EPOCH) >= 1  # at least <eos>
    # validation reports the EMA teacher next to the student
    for key in ("loss_teacher", "acc_av_teacher", "cer_ctc_a_teacher"):
        assert 0.0 <= reporter.get_value("valid", key, MAX_EPOCH) < float("inf"), key


def test_teacher_follows_every_optimiser_step_and_is_saved(semi_setup):
    root, _ = semi_setup
    state = torch.load(root / "exp_full" / "checkpoint.pth", weights_only=False)["model"]
    num_updates = int(state["teacher.num_updates"])
    total_steps = int(state["teacher.total_steps"])
    assert num_updates == total_steps > 0  # one update per step, schedule = all steps
    assert bool(state["teacher.initialized"])
    student, teacher = (
        state["encoder.blocks.0.feed_forward.w_1.weight"],
        state["teacher.model.encoder.blocks.0.feed_forward.w_1.weight"],
    )
    assert not torch.equal(student, teacher)  # the teacher lags behind the student


def test_run_killed_mid_epoch_and_resumed_matches_uninterrupted(semi_setup, resumed_matches_uninterrupted):
    root, train = semi_setup
    full = resumed_matches_uninterrupted(train, root, root / "exp_full")
    assert any(k.startswith("teacher.model.") for k in full)


def _assert_same_weights(full_exp: Path, exp: Path) -> None:
    full = torch.load(full_exp / "checkpoint.pth", weights_only=False)["model"]
    resumed = torch.load(exp / "checkpoint.pth", weights_only=False)["model"]
    assert full.keys() == resumed.keys()
    different = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:5]}"


def test_killed_while_writing_a_checkpoint_keeps_the_previous_one_and_resumes(semi_setup, usr2_train):
    root, train = semi_setup
    exp = root / "exp_killed_writing"
    proc = subprocess.Popen(
        [sys.executable, str(SLOW_WRITE_TRAIN), *train, "--output_dir", str(exp)],
        cwd=root,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    partial = None
    for line in proc.stderr:
        if line.startswith("SLOW WRITE "):  # half of epoch 2's checkpoint is on disk
            partial = Path(line[len("SLOW WRITE ") :].strip())
            proc.kill()
            break
    proc.wait()
    assert partial is not None, "the run ended before its second checkpoint write"
    assert partial.exists() and partial.stat().st_size > 0
    states = torch.load(exp / "checkpoint.pth", weights_only=False)  # whole, and still epoch 1's
    assert states["reporter"]["epoch"] == 1
    log = usr2_train([*train, "--output_dir", str(exp), "--resume", "true"], root)
    assert "removed 1 partial checkpoint file" in log
    assert not partial.exists()
    _assert_same_weights(root / "exp_full", exp)


def test_sigterm_mid_epoch_writes_a_resume_point_and_the_resumed_run_matches(semi_setup, usr2_train):
    """Stopped by SIGTERM inside epoch 2 with step resume points on, resumed: the same weights
    and the same per-epoch losses as the uninterrupted run, which set none of these options."""
    root, train = semi_setup
    options = ["--stop_signals", "SIGTERM", "--save_every_n_steps", "2", "--keep_last_n", "2"]
    exp = root / "exp_sigterm"
    proc = subprocess.Popen(
        [*usr2_train.cmd, *train, *options, "--output_dir", str(exp)],
        cwd=root,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    for line in proc.stderr:
        if "2epoch:train:" in line:  # the first step of epoch 2 has run
            proc.send_signal(signal.SIGTERM)
            break
    log = proc.stderr.read()
    assert proc.wait() == PREEMPTED_EXIT_CODE, log[-4000:]
    position = torch.load(exp / "checkpoint.pth", weights_only=False)["position"]
    assert (position["epoch"], position["batches"] > 0) == (2, True), position["batches"]
    assert not (exp / "2epoch.pth").exists()
    assert len(list(exp.glob("checkpoint.step*.pth"))) == 2
    log = usr2_train([*train, *options, "--output_dir", str(exp), "--resume", "true"], root)
    assert f"{position['batches']} batches were trained before the resume point" in log
    _assert_same_weights(root / "exp_full", exp)
    full, resumed = _reporter(root / "exp_full"), _reporter(exp)
    for epoch in range(1, MAX_EPOCH + 1):
        for phase in ("train", "valid"):
            assert resumed.get_value(phase, "loss", epoch) == full.get_value(phase, "loss", epoch), (phase, epoch)


def _launch_ranks(train, options, exp: Path, root: Path, port: int, world: int = 2):
    """``world`` ranks of ``usr2_train`` on CPU (gloo; rendezvous through the environment, as
    torchrun sets it up), each logging to ``exp/rank<r>.log``; returns (processes, log paths)."""
    exp.mkdir(parents=True, exist_ok=True)
    procs, logs = [], []
    for rank in range(world):
        env = dict(
            os.environ,
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE=str(world),
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            OMP_NUM_THREADS="1",
        )
        log = exp / f"rank{rank}.log"
        with open(log, "a") as stream:
            procs.append(
                subprocess.Popen(
                    [
                        *train,
                        *options,
                        "--output_dir",
                        str(exp),
                        "--ngpu",
                        "0",
                        "--multiprocessing_distributed",
                        "false",
                        "--dist_backend",
                        "gloo",
                    ],
                    cwd=root,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=stream,
                )
            )
        logs.append(log)
    return procs, logs


def _wait_all(procs, timeout: float = 900) -> list:
    return [p.wait(timeout=timeout) for p in procs]


def test_two_rank_ddp_stopped_on_one_rank_resumes_to_the_uninterrupted_result(semi_setup, usr2_train, free_port):
    """Under 2-rank DDP, SIGTERM to rank 1 alone stops both ranks at the same step; the resumed
    run ends with the weights of an uninterrupted 2-rank run."""
    root, train = semi_setup
    train = [*usr2_train.cmd, *train, "--labelled_batch_frames", "40", "--unlabelled_batch_frames", "60"]
    procs, logs = _launch_ranks(train, [], root / "exp_ddp_full", root, free_port)
    assert _wait_all(procs) == [0, 0], logs[0].read_text()[-3000:] + logs[1].read_text()[-3000:]

    exp = root / "exp_ddp_sigterm"
    options = ["--stop_signals", "SIGTERM"]
    procs, logs = _launch_ranks(train, options, exp, root, free_port + 1)
    deadline = time.monotonic() + 900
    while "2epoch:train:" not in logs[0].read_text():  # ESPnet logs on rank 0 only
        assert time.monotonic() < deadline and procs[1].poll() is None, logs[0].read_text()[-3000:]
        time.sleep(0.2)
    procs[1].send_signal(signal.SIGTERM)
    codes = _wait_all(procs)
    assert codes == [PREEMPTED_EXIT_CODE] * 2, logs[0].read_text()[-3000:] + logs[1].read_text()[-3000:]
    assert "a signal on another rank" in logs[0].read_text()
    position = torch.load(exp / "checkpoint.pth", weights_only=False)["position"]
    assert position["epoch"] == 2 and position["batches"] > 0 and len(position["rng"]) == 2
    procs, logs = _launch_ranks(train, [*options, "--resume", "true"], exp, root, free_port + 2)
    assert _wait_all(procs) == [0, 0], logs[0].read_text()[-3000:] + logs[1].read_text()[-3000:]
    _assert_same_weights(root / "exp_ddp_full", exp)
