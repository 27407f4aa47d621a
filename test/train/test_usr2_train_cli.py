"""End to end through ``python -m espnet_usr2.bin.usr2_train`` on a generated labelled set."""

import pytest
import torch
from espnet2.train.reporter import Reporter

from espnet_usr2.tasks.usr2 import USR2Task


@pytest.fixture(scope="module")
def trained(tiny_config, token_list, write_toy_corpus, usr2_train, tmp_path_factory):
    root = tmp_path_factory.mktemp("usr2_train")
    write_toy_corpus(root / "train", num_utts=48, seed=0)
    write_toy_corpus(root / "valid", num_utts=12, seed=1, prefix="val")
    (root / "tokens.txt").write_text("\n".join(token_list) + "\n")
    common = [
        "--config",
        str(tiny_config),
        "--token_list",
        str(root / "tokens.txt"),
        "--token_type",
        "char",
        *usr2_train.data_args(root),
        *usr2_train.quiet,
    ]
    usr2_train(
        [
            *common,
            "--collect_stats",
            "true",
            "--output_dir",
            str(root / "stats"),
            "--train_shape_file",
            str(root / "train" / "text"),
            "--valid_shape_file",
            str(root / "valid" / "text"),
        ],
        root,
    )
    shapes = [
        "--train_shape_file",
        str(root / "stats" / "train" / "video_shape"),
        "--valid_shape_file",
        str(root / "stats" / "valid" / "video_shape"),
    ]
    log = usr2_train(
        [
            *common,
            *shapes,
            "--output_dir",
            str(root / "exp"),
            "--max_epoch",
            "4",
            "--batch_size",
            "4",
            "--scheduler_conf",
            "warmup_steps=10",
        ],
        root,
    )
    return root, common + shapes, log


def test_collect_stats_writes_shapes_of_every_input(trained):
    root, _, _ = trained
    video_shape = (root / "stats" / "train" / "video_shape").read_text().split("\n")[0].split()
    speech_shape = dict(line.split() for line in (root / "stats" / "train" / "speech_shape").read_text().splitlines())
    n_frames, height, width = map(int, video_shape[1].split(","))
    assert (height, width) == (96, 96)
    assert int(speech_shape[video_shape[0]]) == 640 * n_frames


def test_validation_loss_goes_down(trained):
    root, _, _ = trained
    reporter = Reporter()
    reporter.load_state_dict(torch.load(root / "exp" / "checkpoint.pth", weights_only=False)["reporter"])
    losses = [reporter.get_value("valid", "loss", epoch) for epoch in range(1, 5)]
    assert losses[-1] < 0.85 * losses[0], losses
    for m in ("v", "a", "av"):
        assert reporter.get_value("valid", f"loss_ctc_{m}", 4) < reporter.get_value("valid", f"loss_ctc_{m}", 1)


def test_saved_model_reloads_strictly_with_identical_outputs(token_list, make_av_batch, trained):
    root, _, _ = trained
    exp = root / "exp"
    state = torch.load(exp / "valid.loss.best.pth", map_location="cpu")
    fresh, _ = USR2Task.build_model_from_file(exp / "config.yaml", None, "cpu")
    result = fresh.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    loaded, _ = USR2Task.build_model_from_file(exp / "config.yaml", exp / "valid.loss.best.pth", "cpu")
    batch = make_av_batch([20, 14], [3, 2], len(token_list))
    fresh.eval(), loaded.eval()
    with torch.no_grad():
        out_a = fresh.encode(batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"])
        out_b = loaded.encode(batch["speech"], batch["speech_lengths"], batch["video"], batch["video_lengths"])
        loss_a, _, _ = fresh(**batch)
        loss_b, _, _ = loaded(**batch)
    for m in out_a:
        assert torch.equal(out_a[m][0], out_b[m][0])
    assert torch.equal(loss_a, loss_b)


def test_resume_continues_from_the_last_epoch(usr2_train, trained):
    root, common, _ = trained
    log = usr2_train(
        [
            *common,
            "--output_dir",
            str(root / "exp"),
            "--max_epoch",
            "5",
            "--batch_size",
            "4",
            "--scheduler_conf",
            "warmup_steps=10",
            "--resume",
            "true",
        ],
        root,
    )
    assert "5epoch results" in log and "1epoch results" not in log
    assert (root / "exp" / "5epoch.pth").exists()


def test_warmupcosine_schedule_spans_the_whole_run(usr2_train, tmp_path, trained):
    """total_steps is derived from max_epoch x steps per epoch; the lr ends at min_lr."""
    root, common, _ = trained
    out = tmp_path / "cosine"
    usr2_train(
        [
            *common,
            "--output_dir",
            str(out),
            "--max_epoch",
            "2",
            "--batch_size",
            "4",
            "--batch_type",
            "unsorted",
            "--scheduler",
            "warmupcosine",
            "--scheduler_conf",
            "{warmup_steps: 3, min_lr: 1.0e-5}",
        ],
        tmp_path,
    )
    state = torch.load(out / "checkpoint.pth", weights_only=False)
    steps_per_epoch = 48 // 4
    assert state["schedulers"][0]["total_steps"] == 2 * steps_per_epoch
    assert state["optimizers"][0]["param_groups"][0]["lr"] == pytest.approx(1e-5)


def test_dry_run_builds_everything_without_training(usr2_train, tmp_path, trained):
    _, common, _ = trained
    usr2_train([*common, "--output_dir", str(tmp_path / "dry"), "--dry_run", "true"], tmp_path)
    assert (tmp_path / "dry" / "config.yaml").exists()
    assert not list((tmp_path / "dry").glob("*.pth"))
