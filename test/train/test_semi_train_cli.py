"""Semi-supervised training end to end through ``python -m espnet_usr2.bin.usr2_train``.

One uninterrupted run, and one killed in the middle of epoch 2 and resumed: the resumed
run must end with exactly the same student and teacher weights.
"""
from pathlib import Path

import pytest
import torch
from espnet2.train.reporter import Reporter


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
    base = ["--config", str(tiny_config), "--token_list", str(root / "tokens.txt"), "--token_type", "char", *usr2_train.quiet]
    for name, data in (("lab", _entries("--train_data_path_and_name_and_type", root / "lab")),
                       ("unl", _entries("--train_data_path_and_name_and_type", root / "unl", with_text=False))):
        usr2_train([*base, "--collect_stats", "true", "--output_dir", str(root / f"stats_{name}"), *data,
              *_entries("--valid_data_path_and_name_and_type", root / "valid"),
              "--train_shape_file", str(root / name / "wav.scp"), "--valid_shape_file", str(root / "valid" / "text")],
             root)
    train = [
        *base, "--semi", "usr2", "--batch_type", "semi_supervised",
        "--labelled_batch_frames", "60", "--unlabelled_batch_frames", "100", "--max_epoch", str(MAX_EPOCH),
        "--log_interval", "1", "--scheduler_conf", "warmup_steps=5",
        *_entries("--train_data_path_and_name_and_type", root / "lab"),
        *_entries("--unlabelled_data_path_and_name_and_type", root / "unl", with_text=False),
        *_entries("--valid_data_path_and_name_and_type", root / "valid"),
        "--train_shape_file", str(root / "stats_lab" / "train" / "video_shape"),
        "--unlabelled_shape_file", str(root / "stats_unl" / "train" / "video_shape"),
        "--valid_shape_file", str(root / "stats_lab" / "valid" / "video_shape"),
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
    student, teacher = state["encoder.blocks.0.feed_forward.w_1.weight"], state[
        "teacher.model.encoder.blocks.0.feed_forward.w_1.weight"]
    assert not torch.equal(student, teacher)  # the teacher lags behind the student


def test_run_killed_mid_epoch_and_resumed_matches_uninterrupted(semi_setup, resumed_matches_uninterrupted):
    root, train = semi_setup
    full = resumed_matches_uninterrupted(train, root, root / "exp_full")
    assert any(k.startswith("teacher.model.") for k in full)
