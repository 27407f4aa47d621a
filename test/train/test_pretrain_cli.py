"""Self-supervised pre-training end to end: ``usr2_train --model usr2_pretrain`` on audio-visual
data without text, its encoder file initialising recognition training, kill-and-resume, DDP."""

import re
from pathlib import Path

import pytest
import torch
from ddp_teachers import assert_teachers_identical, join_group, leave_group, run_ranks, train_epoch
from espnet2.torch_utils.load_pretrained_model import load_pretrained_model
from espnet2.train.reporter import Reporter

from espnet_usr2.bin import usr2_import
from espnet_usr2.tasks.config import parse_training_args
from espnet_usr2.tasks.release_import import ENCODER_INIT_PARTS
from espnet_usr2.tasks.usr2 import USR2Task

MAX_EPOCH = 3


def _av_entries(option, data_dir):
    return [option, f"{data_dir}/wav.scp,speech,sound", option, f"{data_dir}/video.scp,video,roi_video"]


@pytest.fixture(scope="module")
def pretrained(conf_dir, write_toy_corpus, usr2_train, tmp_path_factory):
    """One uninterrupted pre-training run on text-free data: (root, training args)."""
    root = tmp_path_factory.mktemp("usr2_pretrain")
    for name, seed in (("train", 0), ("valid", 1)):
        write_toy_corpus(root / name, num_utts=16 if name == "train" else 6, seed=seed, prefix=name)
        (root / name / "text").unlink()  # unlabelled: no transcripts anywhere
    data = [
        *_av_entries("--train_data_path_and_name_and_type", root / "train"),
        *_av_entries("--valid_data_path_and_name_and_type", root / "valid"),
    ]
    base = ["--config", str(conf_dir / "pretrain_usr2_tiny.yaml"), *usr2_train.quiet, *data]  # no token list
    usr2_train(
        [
            *base,
            "--collect_stats",
            "true",
            "--output_dir",
            str(root / "stats"),
            "--train_shape_file",
            str(root / "train" / "wav.scp"),
            "--valid_shape_file",
            str(root / "valid" / "wav.scp"),
        ],
        root,
    )
    train = [
        *base,
        "--batch_type",
        "numel",
        "--batch_bins",
        str(2 * 20 * (96 * 96 + 640)),  # ~2 utterances
        "--max_epoch",
        str(MAX_EPOCH),
        "--log_interval",
        "1",
        "--train_shape_file",
        str(root / "stats" / "train" / "video_shape"),
        "--train_shape_file",
        str(root / "stats" / "train" / "speech_shape"),
        "--valid_shape_file",
        str(root / "stats" / "valid" / "video_shape"),
        "--valid_shape_file",
        str(root / "stats" / "valid" / "speech_shape"),
    ]
    log = usr2_train([*train, "--output_dir", str(root / "exp_full")], root)
    return root, train, log


def _reporter(exp: Path) -> Reporter:
    reporter = Reporter()
    reporter.load_state_dict(torch.load(exp / "checkpoint.pth", weights_only=False)["reporter"])
    return reporter


def test_pretraining_lowers_its_loss_and_logs_diagnostics(pretrained):
    root, _, log = pretrained
    reporter = _reporter(root / "exp_full")
    train = [reporter.get_value("train", "loss", e) for e in range(1, MAX_EPOCH + 1)]
    # the targets move with the teacher, and 6 validation clips with random masks are noisy:
    # the training loss over whole epochs is the stable signal
    assert train[-1] < train[0] - 0.03, train
    for key in (
        "loss_v",
        "loss_a",
        "loss_av",
        "cos_masked_av",
        "cos_unmasked_v",
        "mask_frac_v",
        "mask_frac_a",
        "ema_momentum",
        "target_std",
        "target_raw_std",
    ):
        value = reporter.get_value("train", key, MAX_EPOCH)
        assert value == value, key  # logged, not NaN
    assert 0.1 < reporter.get_value("train", "mask_frac_a", MAX_EPOCH) < 0.6
    assert log.count("pre-training collapse check") + log.count("COLLAPSING") == MAX_EPOCH
    warmup, total = map(int, re.search(r"warmupcosine: (\d+) warm-up steps, cosine to step (\d+)", log).groups())
    assert warmup == round(total / MAX_EPOCH) > 0  # the config's warmup_epochs: 1 (of 3 here)
    state = torch.load(root / "exp_full" / "checkpoint.pth", weights_only=False)["model"]
    assert int(state["teacher.num_updates"]) == int(state["teacher.total_steps"]) > 0


def test_encoder_file_initialises_recognition_student_and_teacher(pretrained, tiny_config, token_list, tmp_path):
    root, _, _ = pretrained
    checkpoint = root / "exp_full" / "valid.loss.best.pth"
    pre = torch.load(checkpoint, map_location="cpu")
    for source, prefix in (("backbone", ""), ("target_backbone", "teacher.model.")):
        out = tmp_path / source
        usr2_import.main(
            [
                "--encoder_only",
                "--checkpoint",
                str(checkpoint),
                "--config",
                str(tiny_config),
                "--out_dir",
                str(out),
                "--source",
                source,
            ]
        )
        model = USR2Task.build_model(parse_training_args(tiny_config, token_list, ["--semi", "usr2"]))
        load_pretrained_model(str(out / "encoder.pth"), model, "cpu")  # what --init_param does
        model.ensure_teacher_initialized()  # the first semi-supervised step
        names = [n for n in model.state_dict() if n.startswith(ENCODER_INIT_PARTS)]
        assert len(names) > 100
        recognition = model.state_dict()
        for name in names:
            assert torch.equal(recognition[name], pre[prefix + name]), name
            assert torch.equal(recognition["teacher.model." + name], pre[prefix + name]), name


def test_pretraining_killed_mid_epoch_and_resumed_matches_uninterrupted(pretrained, resumed_matches_uninterrupted):
    root, train, _ = pretrained
    full = resumed_matches_uninterrupted(train, root, root / "exp_full")
    assert any(k.startswith("teacher.model.") for k in full) and any(k.startswith("predictor.") for k in full)


def _ddp_worker(rank: int, root: str, port: int, config: str) -> None:
    from espnet2.train.distributed_utils import DistributedOption

    join_group(rank, port)
    root = Path(root)
    args = USR2Task.get_parser().parse_args(
        [
            "--config",
            config,
            "--batch_type",
            "numel",
            "--batch_bins",
            str(2 * 20 * (96 * 96 + 640)),
            "--train_shape_file",
            str(root / "unl" / "video_shape"),
            *_av_entries("--train_data_path_and_name_and_type", root / "unl"),
        ]
    )
    torch.manual_seed(0)
    model = USR2Task.build_model(args)
    factory = USR2Task.build_iter_factory(args, DistributedOption(distributed=True), "train")
    leave_group(root, rank, train_epoch(model, factory, rank, lambda keys, batch, stats: {"keys": list(keys)}))


def test_two_rank_ddp_pretraining_keeps_teachers_identical(
    conf_dir, write_toy_corpus, write_video_shapes, free_port, tmp_path
):
    write_toy_corpus(tmp_path / "unl", num_utts=8, seed=3, prefix="unl")
    (tmp_path / "unl" / "text").unlink()
    write_video_shapes(tmp_path / "unl")
    records = run_ranks(_ddp_worker, tmp_path, free_port, str(conf_dir / "pretrain_usr2_tiny.yaml"))
    assert_teachers_identical(records)
    seen = [set(k for step in r["keys"] for k in step) for r in records]
    assert not seen[0] & seen[1]
